// Next.js without a worker (issue 11): the bridge's HTTP sink (BRIDGE_HTTP_SINK_URL) POSTs
// signed invalidations to the revalidate route shipped in deploy/clients/nextjs, running in a
// real Next.js 16 app (`next build` + `next start`), and a page cached under a row's tag shows
// the new value after an UPDATE. No worker.mjs runs anywhere in this file.
//
// Run: node --test --test-concurrency=1 tests/integration/nextjs.test.mjs
// Needs the bridge binary (CACHE_BRIDGE_BIN) and scripts/install-deps --tests (which installs the
// example's npm packages, and a Node 20 for Next.js where the system's is older).

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  cleanEnv, freePort, http, httpSinkSignature, isLiveInvalidation, notifyOnly, repoRoot, runBridge, spawnCaptured,
  startStack, metricValue, waitUntil,
} from './harness.mjs';

const EXAMPLE = path.join(repoRoot, 'deploy', 'clients', 'nextjs');
const FIXTURE = path.join(repoRoot, 'tests', 'integration', 'nextjs-app');
const SINK_SECRET = 'it-nextjs-sink-secret-5f0a9c';

/** Node for Next.js 16 (>= 20.9): install-deps puts one in the example's .node when the system's is older. */
function nextNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major > 20 || (major === 20 && minor >= 9)) return process.execPath;
  const dir = path.join(EXAMPLE, '.node', 'node_modules');
  const pkg = existsSync(dir) && readdirSync(dir).find((name) => name.startsWith('node-linux-'));
  if (!pkg) throw new Error(`Next.js 16 needs Node >= 20.9 (this is ${process.version}): run scripts/install-deps --tests`);
  return path.join(dir, pkg, 'bin', 'node');
}

/** The shipped example plus the test's page, built once: {dir, start({port, env}) -> process}. */
async function buildNextApp() {
  const nextBin = path.join(EXAMPLE, 'node_modules', 'next', 'dist', 'bin', 'next');
  if (!existsSync(nextBin)) throw new Error(`${nextBin} missing: run scripts/install-deps --tests`);
  // Inside the example, so that Next.js (which compiles nothing outside the workspace of the
  // nearest lock file) finds its packages in the example's node_modules. Git ignores .it-build-*.
  const dir = mkdtempSync(path.join(EXAMPLE, '.it-build-'));
  for (const entry of ['app', 'lib', 'package.json']) cpSync(path.join(EXAMPLE, entry), path.join(dir, entry), { recursive: true });
  cpSync(path.join(FIXTURE, 'app'), path.join(dir, 'app'), { recursive: true });
  const env = cleanEnv({ NEXT_TELEMETRY_DISABLED: '1' });
  const build = spawnCaptured(nextNode(), [nextBin, 'build'], { name: 'next-build', env, cwd: dir });
  const { code } = await build.exited;
  if (code !== 0) throw new Error(`next build failed (exit ${code}):\n${build.output()}`);
  return {
    dir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
    async start({ port, env: extra }) {
      const proc = spawnCaptured(nextNode(), [nextBin, 'start', '-p', String(port), '-H', '127.0.0.1'],
        { name: 'next-start', env: cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', ...extra }), cwd: dir });
      await waitUntil(async () => {
        if (!proc.running()) throw new Error(`next start exited:\n${proc.output()}`);
        return (await http(`http://127.0.0.1:${port}/api/revalidate`, { timeoutMs: 1000 })).status === 405;
      }, 30000, { intervalMs: 100, message: 'next start answering' });
      return proc;
    },
  };
}

/** The app's data: GET /items/<id> -> {name} from PostgreSQL, counting requests (cache misses). */
async function startDataServer(db) {
  const hits = new Map();
  const server = createServer(async (req, res) => {
    const id = decodeURIComponent(req.url.replace(/^\/items\//, ''));
    hits.set(id, (hits.get(id) ?? 0) + 1);
    const { rows } = await db.query('SELECT name FROM items WHERE id = $1', [id]);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name: rows[0]?.name ?? null }));
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, hits: (id) => hits.get(id) ?? 0, close: () => server.close() };
}

function signed(body, { secret = SINK_SECRET, timestamp = Math.floor(Date.now() / 1000) } = {}) {
  return {
    'content-type': 'application/json',
    'x-cache-bridge-timestamp': String(timestamp),
    'x-cache-bridge-signature': httpSinkSignature(secret, timestamp, body),
  };
}

describe('HTTP sink: a real Next.js app revalidates its tagged pages, no worker',
  notifyOnly('the HTTP sink sits after the queue, the same under both sources'), () => {
    let stack;
    let db;
    let app;
    let data;
    let next;
    let nextPort;
    let bridge;
    const nextEnv = () => ({ DATA_URL: data.url, BRIDGE_HTTP_SINK_SECRET: SINK_SECRET });
    const sinkEnv = () => ({
      BRIDGE_HTTP_SINK_URL: `http://127.0.0.1:${nextPort}/api/revalidate`,
      BRIDGE_HTTP_SINK_SECRET: SINK_SECRET,
    });
    const postedCount = async () =>
      metricValue((await http(`${stack.opsUrl}/metrics`)).text, 'cache_bridge_http_sink_invalidations_total');
    /** Runs `sql` and waits until the bridge has POSTed its invalidation to the app. */
    const changeAndWaitForPost = async (sql, params) => {
      const posted = await postedCount();
      await db.query(sql, params);
      await waitUntil(async () => (await postedCount()) > posted, 10000, { message: 'the HTTP sink POSTed the change' });
    };
    const page = async (id) => {
      const res = await http(`http://127.0.0.1:${nextPort}/items/${id}`, { timeoutMs: 10000 });
      assert.equal(res.status, 200, `GET /items/${id}: ${res.status}`);
      return res.text.match(/<h1 id="name">([^<]*)<\/h1>/)?.[1];
    };

    before(async () => {
      stack = await startStack();
      db = stack.pg;
      await db.query('CREATE TABLE items (id text PRIMARY KEY, name text)');
      await db.attach('items', 'id');
      [app, data, nextPort] = await Promise.all([buildNextApp(), startDataServer(db), freePort()]);
      next = await app.start({ port: nextPort, env: nextEnv() });
      bridge = await stack.startBridge(sinkEnv());
    });
    after(async () => {
      await stack?.stop();
      await next?.stop({ signal: 'SIGTERM', killAfterMs: 5000 });
      data?.close();
      app?.remove();
    });

    test('a page cached under its row\'s tag shows the new value after an UPDATE', async (t) => {
      // Once the INSERT's own invalidation is in, the first visit caches the page.
      await changeAndWaitForPost(`INSERT INTO items VALUES ('1', 'first')`);
      assert.equal(await page('1'), 'first');
      const before = data.hits('1');
      assert.equal(await page('1'), 'first');
      assert.equal(data.hits('1'), before, 'the second visit is served from the cache, without a fetch');

      const sub = await stack.subscribe('invalidations');
      t.after(() => sub.disconnect());
      await db.query(`UPDATE items SET name = 'second' WHERE id = '1'`);
      await waitUntil(async () => (await page('1')) === 'second', 10000, { message: 'the page shows "second"' });
      await sub.waitFor(isLiveInvalidation('items:1'), 5000); // Soketi's subscribers got it too
      const status = JSON.parse((await http(`${stack.opsUrl}/status.json`)).text);
      assert.equal(status.httpSink.url, `http://127.0.0.1:${nextPort}/api/revalidate`);
      assert.ok(status.httpSink.delivered >= 2, `the status page counts the POSTed changes: ${JSON.stringify(status.httpSink)}`);
    });

    test('a key beyond Next.js\'s 256-character tag limit is revalidated too (cacheTagFor hashes it)', async () => {
      const id = 'x'.repeat(300);
      await changeAndWaitForPost(`INSERT INTO items VALUES ($1, 'long-first')`, [id]);
      assert.equal(await page(id), 'long-first');
      const before = data.hits(id);
      assert.equal(await page(id), 'long-first');
      assert.equal(data.hits(id), before, 'cached under the hashed tag');
      await db.query(`UPDATE items SET name = 'long-second' WHERE id = $1`, [id]);
      await waitUntil(async () => (await page(id)) === 'long-second', 10000, { message: 'the long page shows "long-second"' });
    });

    test('the route refuses a forged, stale or unsigned request (401) and expires nothing', async () => {
      assert.equal(await page('1'), 'second');
      const before = data.hits('1');
      const body = JSON.stringify({ invalidations: [{ cacheKey: 'items:1', invalidatedAt: Date.now() }] });
      const url = `http://127.0.0.1:${nextPort}/api/revalidate`;
      for (const [what, headers] of [
        ['a wrong secret', signed(body, { secret: 'not-the-secret-at-all' })],
        ['a 10-minute-old timestamp', signed(body, { timestamp: Math.floor(Date.now() / 1000) - 600 })],
        ['no signature', { 'content-type': 'application/json' }],
      ]) {
        const res = await http(url, { method: 'POST', headers, body });
        assert.equal(res.status, 401, `${what}: ${res.status} ${res.text}`);
      }
      const huge = JSON.stringify({ invalidations: [], pad: 'x'.repeat(2 << 20) });
      const tooLarge = await http(url, { method: 'POST', headers: signed(huge), body: huge, timeoutMs: 15000 });
      assert.equal(tooLarge.status, 413, `a 2 MiB body is refused before it is read whole: ${tooLarge.status}`);
      const good = await http(url, { method: 'POST', headers: signed(body), body });
      assert.equal(good.status, 200, `a correctly signed request is accepted: ${good.text}`);
      assert.equal(await page('1'), 'second');
      assert.equal(data.hits('1'), before + 1, 'only the signed request expired the tag');
    });

    test('replays for new WebSocket subscribers are not POSTed to the app', async () => {
      const sent = await postedCount();
      const replays = async () => metricValue((await http(`${stack.opsUrl}/metrics`)).text, 'cache_bridge_replayed_invalidations_total');
      const replayed = await replays();
      const res = await stack.postWebhook([{ name: 'channel_occupied', channel: 'invalidations' }]);
      assert.equal(res.status, 200);
      await waitUntil(async () => (await replays()) > replayed, 10000, { message: 'the bridge replayed to Soketi' });
      // A change after the replay is POSTed: once it is counted, the replay would have been too.
      await db.query(`UPDATE items SET name = 'third' WHERE id = '1'`);
      await waitUntil(async () => (await page('1')) === 'third', 10000, { message: 'the page shows "third"' });
      assert.equal(await postedCount(), sent + 1, 'one POSTed invalidation (the UPDATE), none of the replayed keys');
    });

    test('the app away: Soketi keeps being served, the app gets the backlog in a few POSTs once it is back', async (t) => {
      const sub = await stack.subscribe('invalidations');
      t.after(() => sub.disconnect());
      const metrics = async () => (await http(`${stack.opsUrl}/metrics`)).text;
      const before = await metrics();
      await next.stop({ signal: 'SIGKILL' });
      // More changes than the publisher has workers, and one key changed three times: a sink
      // that held the others back would stall Soketi's subscribers after the first few, and a
      // key's next change would wait for the app to take its previous one.
      for (const [i, name] of ['away-1', 'away-2', 'while-away'].entries()) {
        await db.query(`UPDATE items SET name = $1 WHERE id = '1'`, [name]);
        await sub.waitForCount(isLiveInvalidation('items:1'), i + 1, 5000);
      }
      for (let i = 0; i < 20; i++) {
        await db.query(`INSERT INTO items VALUES ($1, 'away')`, [`away-${i}`]);
        await sub.waitFor(isLiveInvalidation(`items:away-${i}`), 5000);
      }
      await bridge.waitForLine(/HTTP sink: publishing \d+ event\(s\) failed/, 10000);
      next = await app.start({ port: nextPort, env: nextEnv() });
      await waitUntil(async () => (await page('1')) === 'while-away', 20000, { message: 'the page shows "while-away"' });
      const name = 'cache_bridge_http_sink_invalidations_total';
      await waitUntil(async () => metricValue(await metrics(), name) >= metricValue(before, name) + 23, 10000,
        { message: 'all 23 changes POSTed' });
      const after = await metrics();
      const posts = metricValue(after, 'cache_bridge_http_sink_requests_total') - metricValue(before, 'cache_bridge_http_sink_requests_total');
      t.diagnostic(`23 changes while the app was away reached it in ${posts} POST(s)`);
      assert.ok(posts <= 5, `the backlog went out in few POSTs, not one per change (${posts})`);
    });

    test('--check POSTs an empty signed batch: it passes with the app\'s secret, fails with a clear line otherwise', async () => {
      const ok = await runBridge({ env: stack.bridgeEnv(sinkEnv()), args: ['--check'] });
      assert.equal(ok.code, 0, ok.output);
      assert.match(ok.text, /http sink: http:\/\/127\.0\.0\.1:\d+\/api\/revalidate accepts the bridge's signed requests/);
      const wrong = 'a-wrong-sink-secret-1234';
      const bad = await runBridge({ env: stack.bridgeEnv({ ...sinkEnv(), BRIDGE_HTTP_SINK_SECRET: wrong }), args: ['--check'] });
      assert.equal(bad.code, 1, bad.output);
      assert.match(bad.text, /http sink: .* answered HTTP 401: check BRIDGE_HTTP_SINK_URL and that BRIDGE_HTTP_SINK_SECRET/);
      assert.ok(!bad.output.includes(wrong) && !ok.output.includes(SINK_SECRET), 'the secret never appears in the output');
    });
  });
