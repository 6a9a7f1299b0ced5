// In a real browser (issue 11, items 10 and 12): headless Chromium runs the deploy clients
// against the real stack, and the operators' status page against a running bridge; the
// Grafana dashboard's expressions are checked against a running bridge's /metrics.
//
// Run: node --test --test-concurrency=1 tests/integration/browser.test.mjs
// Needs Debian's chromium and playwright-core (scripts/install-deps --tests), the bridge binary
// (build/bridge/cache-bridge or CACHE_BRIDGE_BIN). Without Chromium the tests fail, saying so.
//
// The clients' tests and the dashboard's involve no change source: they run once (notify).
// The status page shows the source's own lag (cursor or slot): it runs under both.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { CLIENT_FILES, launchChromium, servePages } from './browser.mjs';
import { http, isLiveInvalidation, repoRoot, source, sourceIndependent, startStack, waitUntil } from './harness.mjs';

const SECRET = 'it-browser-secret-7f3e';
const DB_PASSWORD = 'it-browser-dbpw-91c2'; // trust auth ignores it; it must show nowhere
const DASHBOARD = path.join(repoRoot, 'deploy', 'grafana', 'cache-bridge.json');

// What an app does with the events: shows each key's newest invalidation time, and how it
// learnt it (live, replay, snapshot). Defined before the client scripts load.
const SHOW = `
  window.show = (d) => {
    const list = document.getElementById('keys');
    let li = [...list.children].find((el) => el.dataset.key === d.cacheKey);
    if (!li) {
      li = document.createElement('li');
      li.dataset.key = d.cacheKey;
      list.appendChild(li);
    }
    li.dataset.at = String(d.invalidatedAt);
    li.dataset.how = d.snapshot ? 'snapshot' : d.replay ? 'replay' : 'live';
    li.textContent = d.cacheKey + ' invalidated at ' + new Date(d.invalidatedAt).toISOString();
  };`;

/** A page with deploy/clients/browser.js, configured through window.cacheBridgeConfig. */
function browserJsPage({ key, port, channel }) {
  const config = { key, host: '127.0.0.1', port, channels: [channel] };
  return `<!doctype html><meta charset="utf-8"><title>browser.js</title><ul id="keys"></ul>
<script>${SHOW}
  window.cacheBridgeConfig = ${JSON.stringify(config)};
  window.addEventListener('cache-invalidate', (e) => window.show(e.detail));
</script>
<script src="/pusher.min.js"></script>
<script src="/browser.js"></script>`;
}

/** A page with deploy/clients/invalidations.mjs: live events plus the bridge's /snapshot. */
function invalidationsPage({ key, port, channel, snapshotUrl }) {
  return `<!doctype html><meta charset="utf-8"><title>invalidations.mjs</title><ul id="keys"></ul>
<script>${SHOW}</script>
<script src="/pusher.min.js"></script>
<script type="module">
  import { subscribeInvalidations } from '/invalidations.mjs';
  const pusher = new Pusher(${JSON.stringify(key)}, { cluster: 'mt1', wsHost: '127.0.0.1', wsPort: ${port},
    forceTLS: false, enabledTransports: ['ws'], disableStats: true });
  const sub = subscribeInvalidations(pusher, { channel: ${JSON.stringify(channel)},
    snapshotUrl: ${JSON.stringify(snapshotUrl)}, onInvalidate: window.show,
    onError: (err) => console.error('invalidations.mjs: ' + err.message) });
  sub.ready.then((r) => { document.body.dataset.ready = JSON.stringify(r); });
</script>`;
}

/** What the page shows for `cacheKey`: {at, how, text}, or undefined. */
const shown = (page, cacheKey) => page.evaluate((k) => {
  const li = [...document.querySelectorAll('#keys li')].find((el) => el.dataset.key === k);
  return li && { at: Number(li.dataset.at), how: li.dataset.how, text: li.textContent };
}, cacheKey);

/** Waits until the page shows `cacheKey` with a timestamp that `accept` takes; returns it. */
async function waitShown(page, cacheKey, accept, what) {
  let last;
  try {
    return await waitUntil(async () => {
      last = await shown(page, cacheKey);
      return last && accept(last) && last;
    }, 10000, { message: `the page showing ${what}` });
  } catch (err) {
    throw new Error(`${err.message}; it shows ${JSON.stringify(last)}; page problems: ${page.problems.join('; ') || 'none'}`);
  }
}

/** Names of the samples (and metric families) in a Prometheus text exposition. */
function exposedNames(text) {
  const names = new Map(); // name -> Set of label names
  for (const line of text.split('\n')) {
    const family = line.match(/^# TYPE (\S+) /);
    if (family) names.set(family[1], names.get(family[1]) ?? new Set());
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s/);
    if (!m) continue;
    const labels = names.get(m[1]) ?? new Set();
    for (const pair of (m[2] ?? '').split(',').filter(Boolean)) labels.add(pair.split('=')[0].trim());
    names.set(m[1], labels);
  }
  return names;
}

/** Every PromQL expression of a Grafana dashboard: panels' targets and query variables. */
function dashboardExpressions(dashboard) {
  const exprs = [];
  const walk = (panels = []) => {
    for (const panel of panels) {
      for (const t of panel.targets ?? []) if (t.expr) exprs.push({ panel: panel.title, expr: t.expr });
      walk(panel.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type === 'query') exprs.push({ panel: `variable ${v.name}`, expr: v.query?.query ?? v.query ?? v.definition });
  }
  return exprs;
}

// Labels Prometheus adds to every sample it scrapes: not in the bridge's own output.
const SCRAPE_LABELS = new Set(['instance', 'job']);

/**
 * What a dashboard uses that a bridge's /metrics lacks: metric names, and label names given in
 * selectors ({kind="timeout"}). Returns a list of problems (empty: none).
 */
function missingFromMetrics(exprs, names) {
  const problems = [];
  for (const { panel, expr } of exprs) {
    for (const m of String(expr).matchAll(/\b(cache_bridge_[a-zA-Z0-9_]+)(\{([^}]*)\})?/g)) {
      const [, name, , selector] = m;
      if (!names.has(name)) {
        problems.push(`${panel}: ${name} is not in /metrics`);
        continue;
      }
      for (const matcher of (selector ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
        const label = matcher.split(/=~|!~|!=|=/)[0].trim();
        if (label && !SCRAPE_LABELS.has(label) && !names.get(name).has(label)) problems.push(`${panel}: ${name} has no label ${label}`);
      }
    }
  }
  return problems;
}

describe('in a real browser: the deploy clients, the status page, the Grafana dashboard', () => {
  let stack;
  let db;
  let bridge;
  let chromium;
  let launchError;
  let site;

  before(async () => {
    // Kept, not thrown: every test that needs the browser then fails with this message (a
    // failing hook would only cancel them).
    chromium = await launchChromium().catch((err) => {
      launchError = err;
    });
    stack = await startStack({ soketi: { secret: SECRET } });
    db = stack.pg;
    site = await servePages(CLIENT_FILES);
    // Attached before the bridge starts (the WAL source needs its publication).
    for (const name of ['b_live', 'b_late', 'b_snap']) await table(name);
    await db.query('CREATE TABLE s (id text PRIMARY KEY, n int NOT NULL)');
    await db.attach('s', 'id');
    const url = new URL(db.url);
    url.password = DB_PASSWORD;
    // A channel per table: each test's page arrives on a channel of its own.
    bridge = await stack.startBridge({ BRIDGE_CHANNEL: 'inv-{table}', DATABASE_URL: url.href });
  });
  after(async () => {
    await chromium?.close();
    await site?.close();
    await stack?.stop();
  });

  /** A new page in headless Chromium; throws why Chromium did not start, if it did not. */
  function newPage() {
    if (!chromium) throw launchError ?? new Error('headless Chromium did not start');
    return chromium.newPage();
  }

  /** Opens a page of `html` served from the test's site (127.0.0.1, another origin than the bridge). */
  async function openPage(name, html) {
    site.route(`/${name}.html`, { body: html });
    const page = await newPage();
    await page.goto(`${site.url}/${name}.html`);
    return page;
  }

  /** A table attached with rows 1..3 and no change recorded (rows inserted before attach). */
  async function table(name) {
    await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, n int NOT NULL)`);
    await db.query(`INSERT INTO ${name} SELECT g, 0 FROM generate_series(1, 3) g`);
    await db.attach(name, 'id');
  }

  const occupied = (channel) => waitUntil(async () => (await stack.soketi.occupiedChannels()).includes(channel),
    10000, { message: `Soketi reporting ${channel} occupied` });

  test('browser.js: an UPDATE in PostgreSQL shows up in the page with its timestamp, and a later one replaces it', sourceIndependent, async () => {
    const page = await openPage('live', browserJsPage({ key: stack.soketi.key, port: stack.soketi.port, channel: 'inv-b_live' }));
    await occupied('inv-b_live');

    await db.query('UPDATE b_live SET n = n + 1 WHERE id = 2');
    const first = await waitShown(page, 'b_live:2', (s) => s.how === 'live', 'b_live:2 (live)');
    const stamp = await db.stamp('b_live:2');
    assert.equal(first.at, stamp.ms, 'the page shows the invalidatedAt the bridge stamped');
    assert.match(first.text, new RegExp(`^b_live:2 invalidated at ${new Date(stamp.ms).toISOString()}$`));

    await db.query('UPDATE b_live SET n = n + 1 WHERE id = 2');
    const second = await waitShown(page, 'b_live:2', (s) => s.at > first.at, 'a newer timestamp for b_live:2');
    assert.equal(second.at, (await db.stamp('b_live:2')).ms);
    assert.equal(await shown(page, 'b_live:1'), undefined, 'an untouched row is not invalidated');
    assert.deepEqual(page.problems, []);
  });

  test('browser.js, late: a change committed before the page subscribes reaches it by the replay on channel_occupied', sourceIndependent, async () => {
    await db.query('UPDATE b_late SET n = n + 1 WHERE id = 3');
    const stamp = await db.stamp('b_late:3');
    assert.deepEqual((await stack.soketi.occupiedChannels()).filter((c) => c === 'inv-b_late'), [], 'no one on the channel yet');

    const page = await openPage('late', browserJsPage({ key: stack.soketi.key, port: stack.soketi.port, channel: 'inv-b_late' }));
    const got = await waitShown(page, 'b_late:3', () => true, 'b_late:3 (replayed)');
    assert.equal(got.how, 'replay');
    assert.equal(got.at, stamp.ms, 'the replay carries the timestamp of the change, not of the replay');
    assert.deepEqual(page.problems, []);
  });

  test('invalidations.mjs, a later subscriber: no replay reaches it, the /snapshot fetch (cross-origin) gives it the timestamp', sourceIndependent, async () => {
    const first = await stack.subscribe('inv-b_snap'); // occupies the channel: no webhook for the page
    try {
      await db.query('UPDATE b_snap SET n = n + 1 WHERE id = 1');
      await first.waitFor(isLiveInvalidation('b_snap:1'));
      const stamp = await db.stamp('b_snap:1');

      const snapshotUrl = `${stack.baseUrl}/snapshot`;
      assert.notEqual(new URL(snapshotUrl).origin, site.url, 'the page and the bridge are different origins');
      const page = await openPage('snapshot', invalidationsPage({ key: stack.soketi.key, port: stack.soketi.port,
        channel: 'inv-b_snap', snapshotUrl }));
      const got = await waitShown(page, 'b_snap:1', () => true, 'b_snap:1 (from the snapshot)');
      assert.equal(got.how, 'snapshot');
      assert.equal(got.at, stamp.ms);
      const ready = await waitUntil(() => page.evaluate(() => document.body.dataset.ready), 10000,
        { message: 'the first snapshot merged' });
      assert.deepEqual(JSON.parse(ready), { count: 1, truncated: false });

      // Live events follow the snapshot in the same page.
      await db.query('UPDATE b_snap SET n = n + 1 WHERE id = 1');
      const live = await waitShown(page, 'b_snap:1', (s) => s.at > got.at && s.how === 'live', 'the next change, live');
      assert.equal(live.at, (await db.stamp('b_snap:1')).ms);
      assert.deepEqual(page.problems, [], 'no CORS or script error');
    } finally {
      await first.disconnect();
    }
  });

  /** The status page's visible state. */
  const statusView = (page) => page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent ?? '';
    return {
      state: text('state'),
      reason: text('state-reason'),
      source: text('source'),
      queueDepth: text('queue-depth'),
      lagTitle: text('lag-title'),
      lag: text('lag'),
      errors: Object.fromEntries(['timeout', 'server', 'rejected', 'throttled', 'retries', 'dropped']
        .map((k) => [k, text(`err-${k}`)])),
      lastProblem: text('last-problem'),
      poll: text('poll'),
      recent: [...document.querySelectorAll('#recent tbody tr')].map((tr) => ({
        key: tr.querySelector('td.key')?.textContent,
        kind: tr.querySelector('td.kind')?.textContent,
        latency: tr.querySelector('td.latency')?.textContent,
        cells: tr.cells.length,
      })),
      images: document.querySelectorAll('img').length,
      pwned: window.pwned === true,
    };
  });

  async function waitView(page, accept, what) {
    let view;
    try {
      return await waitUntil(async () => {
        view = await statusView(page);
        return accept(view) && view;
      }, 15000, { message: `the status page showing ${what}` });
    } catch (err) {
      throw new Error(`${err.message}; it shows ${JSON.stringify(view)}; page problems: ${page.problems.join('; ') || 'none'}`);
    }
  }

  test(`the status page (${source}): ready, the source and its lag, the new key in its recent list, and a key of markup shown as text`, async () => {
    const page = await newPage();
    const response = await page.goto(`${bridge.opsUrl}/status`);
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'], /script-src 'sha256-/);

    await waitView(page, (v) => v.state === 'ready' && v.source === source, `ready, source ${source}`);
    const evil = '<img src=x onerror="window.pwned=true">';
    await db.query('INSERT INTO s VALUES ($1, 1)', [evil]);
    const key = `s:${evil}`;
    const view = await waitView(page, (v) => v.recent.some((r) => r.key === key), `${key} in the recent list`);
    const row = view.recent.find((r) => r.key === key);
    assert.equal(row.kind, 'live');
    assert.equal(row.cells, 6);
    const latency = Number(row.latency.match(/^(\d+\.\d) ms$/)?.[1]);
    assert.ok(latency >= 0 && latency < 5000, `a commit-to-publish latency in ms: ${row.latency}`);
    assert.equal(view.images, 0, 'the key was not parsed as markup');
    assert.equal(view.pwned, false, 'its onerror did not run');
    assert.equal(view.lagTitle, source === 'wal' ? 'Slot lag' : 'Cursor lag');
    assert.match(view.lag, /^\d+(\.\d)? (ms|s|B|KiB|MiB)$/);
    assert.match(view.poll, /^updated /);
    assert.deepEqual(view.errors, { timeout: '0', server: '0', rejected: '0', throttled: '0', retries: '0', dropped: '0' });
    const settled = await waitView(page, (v) => v.queueDepth === '0', 'an empty queue');
    assert.match(settled.reason, /readyz: 200/);
    assert.deepEqual(page.problems, [], 'no script error, no CSP violation');

    // The JSON behind it: no secret, and only on the operators' port.
    const json = await http(`${bridge.opsUrl}/status.json`);
    assert.equal(json.status, 200);
    assert.match(json.headers.get('content-type'), /^application\/json/);
    assert.equal(json.headers.get('access-control-allow-origin'), null, 'other origins cannot read it');
    for (const secret of [SECRET, DB_PASSWORD]) assert.ok(!json.text.includes(secret), 'no secret in /status.json');
    assert.ok(JSON.parse(json.text).recent.some((r) => r.cacheKey === key));
    assert.equal((await http(`${stack.baseUrl}/status`)).status, 404, 'not on the public port');
    assert.equal((await http(`${stack.baseUrl}/status.json`)).status, 404, 'not on the public port');
  });

  test('the status page while Soketi is down: not ready and why, publish errors counted and the last one shown, the cursor lagging; all back after', sourceIndependent, async () => {
    const page = await newPage();
    await page.goto(`${bridge.opsUrl}/status`);
    await waitView(page, (v) => v.state === 'ready', 'ready');
    await stack.soketi.stop();
    await db.query(`INSERT INTO s VALUES ('while-down', 1)`);
    // The cursor cannot pass an unpublished change: its lag (notify) grows meanwhile.
    const down = await waitView(page, (v) => v.state === 'not ready' && Number(v.errors.retries) > 0 &&
      /^[1-9]\d* ms$|^\d+\.\d s$/.test(v.lag), 'not ready, with publish retries and a cursor lag');
    assert.match(down.reason, /^GET \/readyz: 503 \S/);
    assert.match(down.lastProblem, /publishing \d+ event\(s\) failed/);
    assert.ok(Number(down.errors.timeout) + Number(down.errors.server) > 0, JSON.stringify(down.errors));

    await stack.restartSoketi();
    const back = await waitView(page, (v) => v.state === 'ready' && v.recent.some((r) => r.key === 's:while-down') &&
      v.lag === '0 ms', 'ready again, s:while-down published, the cursor caught up');
    assert.equal(back.recent.find((r) => r.key === 's:while-down').kind, 'live');
    assert.deepEqual(page.problems, []);
  });

  test('the Grafana dashboard uses only metric names and labels a running bridge exports', sourceIndependent, async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    const metrics = await http(`${bridge.opsUrl}/metrics`);
    assert.equal(metrics.status, 200);
    const names = exposedNames(metrics.text);
    const exprs = dashboardExpressions(dashboard);
    assert.ok(exprs.length >= 8, `the dashboard has its queries (${exprs.length})`);
    assert.deepEqual(missingFromMetrics(exprs, names), []);
    // The check itself can fail.
    assert.deepEqual(missingFromMetrics([{ panel: 'p', expr: 'rate(cache_bridge_no_such_total[5m]) + cache_bridge_queue_depth{nope="x"}' }], names),
      ['p: cache_bridge_no_such_total is not in /metrics', 'p: cache_bridge_queue_depth has no label nope']);

    // One data-source variable, and every query goes through it.
    const variables = dashboard.templating.list.filter((v) => v.type === 'datasource');
    assert.equal(variables.length, 1);
    assert.equal(variables[0].query, 'prometheus');
    const ref = `\${${variables[0].name}}`;
    const panels = [];
    const walk = (list = []) => { for (const p of list) { panels.push(p); walk(p.panels); } };
    walk(dashboard.panels);
    for (const p of panels.filter((x) => x.type !== 'row')) {
      assert.equal(p.datasource?.uid, ref, `panel ${p.title} uses the data-source variable`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, ref, `a query of ${p.title} uses it`);
    }
  });
});
