// Observability (issue 4): /healthz, /readyz, /metrics on the operators' port (apart from the
// webhook's), and `--check`.
//
// Run: node --test --test-concurrency=1 tests/integration/observability.test.mjs
// (the whole suite: node --test --test-concurrency=1 tests/integration/)
// Needs build/bridge/cache-bridge (or CACHE_BRIDGE_BIN) and scripts/install-deps.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { freePort, http, metricValue, runBridge, sleep, source, startStack, waitUntil } from './harness.mjs';

const SECRET = 'it-obs-secret-93b0';

describe('observability: health, readiness, metrics and --check', () => {
  let stack;
  let db;

  before(async () => {
    stack = await startStack({ soketi: { secret: SECRET } });
    db = stack.pg;
    await db.query(`CREATE TABLE o (id int PRIMARY KEY, n int)`);
    await db.attach('o', 'id');
  });
  after(async () => {
    await stack?.stop();
  });

  test('GET /healthz answers 200', async () => {
    const bridge = await stack.useBridge({}, { ready: 'healthz' });
    const r = await http(`${bridge.opsUrl}/healthz`);
    assert.equal(r.status, 200);
  });

  test('each audience its own door: probes and metrics only on the operators\' port, webhooks and snapshots only on the public one', async () => {
    const bridge = await stack.useBridge({}, { ready: 'readyz' });
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      assert.equal((await http(`${bridge.opsUrl}${path}`)).status, 200, `ops ${path}`);
      assert.equal((await http(`${bridge.baseUrl}${path}`)).status, 404, `public ${path}`);
    }
    assert.equal((await http(`${bridge.baseUrl}/snapshot?channel=invalidations`)).status, 200);
    assert.equal((await http(`${bridge.opsUrl}/snapshot?channel=invalidations`)).status, 404);
    assert.equal((await http(`${bridge.opsUrl}${stack.webhookPath}`, { method: 'POST', body: '{}' })).status, 404);
  });

  test('slow probe clients cannot hold up webhooks: ten stalled connections to the operators\' port, a webhook still answers at once', async (t) => {
    const bridge = await stack.useBridge({}, { ready: 'readyz' });
    const { port } = new URL(bridge.opsUrl);
    const stalled = await Promise.all(Array.from({ length: 10 }, () => new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => { socket.write('GET /readyz HTTP/1.1\r\n'); resolve(socket); });
      socket.on('error', reject);
    })));
    t.after(() => stalled.forEach((s) => s.destroy()));
    await sleep(200);
    const t0 = Date.now();
    const hook = await stack.postWebhook([{ name: 'channel_occupied', channel: 'invalidations' }]);
    const ms = Date.now() - t0;
    assert.equal(hook.status, 200);
    // Sharing workers with the stalled connections, it would wait for their 5 s read timeout.
    assert.ok(ms < 1000, `the webhook took ${ms} ms`);
  });

  test('GET /readyz: 200 with PostgreSQL and Soketi up, 503 with a one-line reason while Soketi is down', async () => {
    const bridge = await stack.useBridge();
    assert.equal((await http(`${bridge.opsUrl}/readyz`)).status, 200);
    await stack.soketi.stop();
    let down;
    try {
      down = await waitUntil(async () => {
        const r = await http(`${bridge.opsUrl}/readyz`);
        return r.status === 503 && r;
      }, 20000, { intervalMs: 200, message: 'readyz 503 with Soketi stopped' });
    } finally {
      await stack.restartSoketi();
    }
    const reason = down.text.trim();
    assert.ok(reason.length > 0, 'a reason is given');
    assert.ok(!reason.includes('\n'), `one line: ${JSON.stringify(down.text)}`);
    assert.match(reason, /soketi/i, 'the reason names Soketi');
    assert.ok(!down.text.includes(SECRET));
    await waitUntil(async () => (await http(`${bridge.opsUrl}/readyz`)).status === 200, 30000,
      { intervalMs: 200, message: 'readyz 200 again after Soketi came back' });
    assert.ok(bridge.running());
  });

  test('GET /metrics counts notifications received and events published', async () => {
    // What the source received: NOTIFYs, or row changes and messages read from the WAL.
    const receivedName = source === 'wal' ? 'cache_bridge_wal_changes_received_total' : 'cache_bridge_notifications_received_total';
    const bridge = await stack.useBridge();
    const scrape = async () => {
      const r = await http(`${bridge.opsUrl}/metrics`);
      assert.equal(r.status, 200);
      return r.text;
    };
    const before = await scrape();
    for (const name of [receivedName, 'cache_bridge_events_published_total']) {
      assert.ok(before.includes(name), `/metrics has ${name}:\n${before}`);
    }
    const received0 = metricValue(before, receivedName);
    const published0 = metricValue(before, 'cache_bridge_events_published_total');
    assert.equal(typeof received0, 'number', `a sample of ${receivedName}:\n${before}`);
    assert.equal(typeof published0, 'number', `a sample of cache_bridge_events_published_total:\n${before}`);
    const names = before.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{\s]/)[0]);
    assert.deepEqual(names.filter((n) => !n.startsWith('cache_bridge_')), [], 'every metric is prefixed cache_bridge_');

    await db.query(`INSERT INTO o VALUES (1, 0)`);
    await db.query(`UPDATE o SET n = 1 WHERE id = 1`);
    let last = before;
    await waitUntil(async () => {
      last = await scrape();
      return metricValue(last, receivedName) >= received0 + 2 &&
        metricValue(last, 'cache_bridge_events_published_total') >= published0 + 1;
    }, 10000, { intervalMs: 200, message: 'counters went up' }).catch((err) => {
      throw new Error(`${err.message}\nbefore:\n${before}\nafter:\n${last}`);
    });
  });

  test('--check exits 0 with everything up, printing one line per check', async () => {
    await Promise.all(stack.bridgesStarted.map((b) => b.stop()));
    const r = await runBridge({ env: stack.bridgeEnv(), args: ['--check'], timeoutMs: 30000 });
    assert.equal(r.code, 0, `exit code 0:\n${r.output}`);
    const lines = r.lines.map((l) => l.text).filter((l) => l.trim());
    assert.ok(lines.length >= 2, `at least a PostgreSQL line and a Soketi line:\n${r.output}`);
    assert.ok(lines.some((l) => /postgres|database/i.test(l)), `a line for PostgreSQL:\n${r.output}`);
    assert.ok(lines.some((l) => /soketi/i.test(l)), `a line for Soketi:\n${r.output}`);
    // Same machine, same clock: the measured bridge-database offset is within a few ms.
    const clock = lines.find((l) => /^ok\s+clock: the database's clock is [\d.]+ ms (ahead of|behind) the bridge's/.test(l));
    assert.ok(clock, `a line with the measured clock offset:\n${r.output}`);
    assert.ok(Number(clock.match(/is ([\d.]+) ms/)[1]) < 50, clock);
    assert.ok(!r.text.includes(SECRET), 'the secret is not printed');
  });

  test('--check exits 1 with a wrong DATABASE_URL', async () => {
    const closedPort = await freePort(); // nothing listens there
    const r = await runBridge({
      env: stack.bridgeEnv({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${closedPort}/postgres?connect_timeout=5` }),
      args: ['--check'],
      timeoutMs: 30000,
    });
    assert.equal(r.code, 1, `exit code 1:\n${r.output}`);
    const lines = r.lines.map((l) => l.text).filter((l) => l.trim());
    assert.ok(lines.some((l) => /postgres|database/i.test(l)), `a line for the failed PostgreSQL check:\n${r.output}`);
    assert.ok(lines.some((l) => /soketi/i.test(l)), `the Soketi check still runs and reports:\n${r.output}`);
    assert.ok(!r.text.includes(SECRET), 'the secret is not printed');
  });

  test('BRIDGE_LOG_FORMAT=json logs one JSON object per line; SIGTERM exits 0', async () => {
    const bridge = await stack.useBridge({ BRIDGE_LOG_FORMAT: 'json' });
    await db.query(`INSERT INTO o VALUES (2, 0)`);
    await db.rawInvalidation('{not json'); // a warn line
    await bridge.waitForLine(/"warn"/, 5000).catch(() => {}); // asserted below, with the whole log
    const r = await bridge.stop();
    assert.equal(r.code, 0, `exit code 0 after SIGTERM (signal ${r.signal}):\n${bridge.output()}`);
    const lines = bridge.lines.filter((l) => l.stream === 'stderr' && l.text.trim());
    assert.ok(lines.length >= 2, bridge.output());
    for (const l of lines) {
      let obj;
      assert.doesNotThrow(() => (obj = JSON.parse(l.text)), `not JSON: ${l.text}`);
      assert.equal(typeof obj.level, 'string', `a level: ${l.text}`);
      assert.ok(typeof (obj.message ?? obj.msg) === 'string', `a message: ${l.text}`);
    }
    assert.ok(lines.some((l) => JSON.parse(l.text).level === 'warn'), 'the bad notification is a warn line');
  });

  test('no bridge log line contains the app secret', () => {
    for (const b of stack.bridgesStarted) {
      assert.ok(!b.text().includes(SECRET), `the secret appears in a bridge log:\n${b.output()}`);
    }
  });
});
