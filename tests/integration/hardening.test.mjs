// Hostile input and bounded behaviour (issue 8), with real PostgreSQL, Soketi and bridge:
// secrets never leave the process in a log line or --check, old signed webhooks do not
// replay, and SIGTERM is bounded whatever Soketi does.
//
// Run: node --test --test-concurrency=1 tests/integration/hardening.test.mjs
// Needs build/bridge/cache-bridge (or CACHE_BRIDGE_BIN) and scripts/install-deps.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import {
  freePort, http, isInvalidation, runBridge, signWebhook, sleep, startStack, waitUntil,
} from './harness.mjs';

const SECRET = 'it-hardening-secret-5be0';

describe('hardening: secrets and replayed webhooks', () => {
  let stack;
  let db;

  before(async () => {
    stack = await startStack({ soketi: { secret: SECRET } });
    db = stack.pg;
    await db.query(`CREATE TABLE h (id int PRIMARY KEY); SELECT cache_invalidation_attach('h', 'id');`);
  });
  after(async () => {
    await stack?.stop();
  });

  // libpq quotes the malformed part of a URI in its error ('invalid percent-encoded token').
  test('a malformed database password appears in no log line and no --check line', async () => {
    const password = 'Pa%ss-w0rd';
    const url = `postgresql://app:${password}@127.0.0.1:${db.port}/postgres`;
    const bridge = await stack.useBridge({ DATABASE_URL: url }, { ready: 'healthz' });
    await bridge.waitForLine(/PostgreSQL: .*reconnecting/, 10000);
    await sleep(1500); // a retry or two
    await bridge.stop();
    const check = await runBridge({ env: stack.bridgeEnv({ DATABASE_URL: url }), args: ['--check'] });
    assert.equal(check.code, 1, check.output);
    for (const [what, text] of [['the log', bridge.text()], ['--check', check.text]]) {
      assert.ok(!text.includes(password) && !text.includes('Pa%ss'), `${what} shows the password:\n${text}`);
      assert.match(text, /\[redacted\]|percent/i, `${what} still says what is wrong:\n${text}`);
    }
  });

  test('a correctly signed webhook older than 5 minutes is refused (400, counted), a fresh one replays', async (t) => {
    await stack.useBridge();
    await db.query('INSERT INTO h VALUES (1)');
    const sub = await stack.subscribe('invalidations');
    t.after(() => sub.disconnect());
    await sub.waitFor(isInvalidation('h:1'), 10000);
    await sleep(500);
    const post = (timeMs) => {
      const body = JSON.stringify({ time_ms: timeMs, events: [{ name: 'channel_occupied', channel: 'invalidations' }] });
      return http(stack.webhookUrl, { method: 'POST', body, headers: {
        'Content-Type': 'application/json', 'X-Pusher-Key': stack.soketi.key, 'X-Pusher-Signature': signWebhook(body, SECRET) } });
    };
    const since = sub.events.length;
    const old = await post(Date.now() - 6 * 60 * 1000);
    assert.equal(old.status, 400, old.text);
    const ahead = await post(Date.now() + 2 * 60 * 1000);
    assert.equal(ahead.status, 400, ahead.text);
    await sleep(1000);
    assert.deepEqual(sub.events.slice(since), [], 'a refused webhook replays nothing');
    const metrics = await http(`${stack.baseUrl}/metrics`);
    assert.match(metrics.text, /^cache_bridge_webhooks_rejected_total\{reason="stale"\} 2$/m);

    const fresh = await post(Date.now());
    assert.equal(fresh.status, 200);
    await sub.waitFor((e) => sub.events.indexOf(e) >= since && isInvalidation('h:1')(e) && e.data.replay === true, 10000);
  });

  test('SIGTERM with 200 keys pending and a Soketi that accepts but never answers: exits within 5 s plus one HTTP timeout, loses nothing', async (t) => {
    const sockets = new Set();
    const silent = net.createServer((socket) => { sockets.add(socket); socket.on('error', () => {}); });
    const silentPort = await freePort();
    await new Promise((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
    t.after(() => { for (const s of sockets) s.destroy(); silent.close(); });

    const httpTimeoutMs = 2000;
    const bridge = await stack.useBridge({ SOKETI_PORT: silentPort, BRIDGE_HTTP_TIMEOUT_MS: httpTimeoutMs },
      { ready: /PostgreSQL: listening/ });
    await db.query('INSERT INTO h SELECT g FROM generate_series(1000, 1199) g');
    await bridge.waitForLine(/publishing \d+ event\(s\) failed/, 15000);
    const t0 = Date.now();
    const exit = await bridge.stop({ signal: 'SIGTERM', killAfterMs: 60000 });
    const elapsed = Date.now() - t0;
    t.diagnostic(`SIGTERM to exit: ${elapsed} ms (bound: 5000 + ${httpTimeoutMs} ms)`);
    assert.equal(exit.code, 0, bridge.output());
    // 1.5 s of slack for a shared CI machine.
    assert.ok(elapsed <= 5000 + httpTimeoutMs + 1500, `took ${elapsed} ms:\n${bridge.output()}`);

    // What it gave up on is still after the cursor: the next bridge, with the real Soketi, publishes it.
    const sub = await stack.subscribe('invalidations');
    t.after(() => sub.disconnect());
    await stack.useBridge();
    await waitUntil(() => Array.from({ length: 200 }, (_, i) => `h:${1000 + i}`)
      .every((key) => sub.events.some(isInvalidation(key))), 20000, { message: 'all 200 keys delivered after the restart' });
  });
});
