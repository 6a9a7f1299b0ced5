// Hostile input and bounded behaviour (issue 8), with real PostgreSQL, Soketi and bridge:
// secrets never leave the process in a log line or --check, and old signed webhooks do not
// replay.
//
// Run: node --test --test-concurrency=1 tests/integration/hardening.test.mjs
// Needs build/bridge/cache-bridge (or CACHE_BRIDGE_BIN) and scripts/install-deps.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { http, isInvalidation, runBridge, signWebhook, sleep, startStack } from './harness.mjs';

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
});
