// Core path (issue 2): PostgreSQL NOTIFY -> bridge -> Soketi -> pusher-js, with real processes.
// What a user observes: events at a pusher-js client, the bridge's exit codes and log lines.
//
// Run: node --test --test-concurrency=1 tests/integration/core.test.mjs
// (the whole suite: node --test --test-concurrency=1 tests/integration/)
// Needs build/bridge/cache-bridge (or CACHE_BRIDGE_BIN) and scripts/install-deps.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  WARN_OR_ERROR, isLiveInvalidation, notifyOnly, runBridge, sleep, startStack, waitUntil,
} from './harness.mjs';

const SECRET = 'it-core-secret-7c1e';

/** invalidatedAt is epoch ms, close to now, and not older than the store's value at commit. */
function assertTimestamp(ms, storeMs, what = 'invalidatedAt') {
  assert.equal(typeof ms, 'number', `${what} is a number`);
  assert.ok(Number.isInteger(ms), `${what} ${ms} is whole milliseconds`);
  assert.ok(Math.abs(Date.now() - ms) < 5000, `${what} ${ms} is within 5 s of now (${Date.now()})`);
  if (storeMs !== undefined) assert.ok(ms >= storeMs, `${what} ${ms} >= store's ${storeMs}`);
}

describe('core: notifications reach pusher-js clients', () => {
  let stack;
  let db;
  let shared; // the default-config bridge most tests use

  before(async () => {
    stack = await startStack({ soketi: { secret: SECRET } });
    db = stack.pg;
    await db.query(`
      CREATE TABLE t     (id int PRIMARY KEY, name text);
      CREATE TABLE t2    (id int PRIMARY KEY, name text);
      CREATE TABLE posts (id int PRIMARY KEY, title text);
      CREATE TABLE big   (id int PRIMARY KEY, body text);`);
    await db.attach('t', 'id', { rowData: true });
    await db.attach('t2', 'id', { style: 'text' });
    await db.attach('posts', 'id', { rowData: true });
    await db.attach('big', 'id', { rowData: true });
  });
  after(async () => {
    await stack?.stop();
  });

  async function defaultBridge() {
    if (!shared?.running()) shared = await stack.startBridge();
    return shared;
  }
  /** Stops the shared bridge and starts one with `overrides` for this test only. */
  async function ownBridge(t, overrides, opts) {
    await shared?.stop();
    shared = undefined;
    const b = await stack.startBridge(overrides, opts);
    t.after(() => b.stop());
    return b;
  }
  async function subscribe(t, channel) {
    const sub = await stack.subscribe(channel);
    t.after(() => sub.disconnect());
    return sub;
  }

  // data of a DELETE: both sources carry the key column; the notify source's whole old row is
  // the next test's, the WAL source's identity-only row is wal.test.mjs's.
  test('JSON style: insert, update and delete arrive with cacheKey, action, id, data and timestamp', async (t) => {
    await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    // Let the subscription's own replay finish first: a replay racing a live change is
    // store.test.mjs's subject ("a replay merged with a live change ...").
    await sleep(500);
    const steps = [
      [`INSERT INTO t VALUES (1, 'a')`, 'insert', { id: 1, name: 'a' }],
      [`UPDATE t SET name = 'b' WHERE id = 1`, 'update', { id: 1, name: 'b' }],
      [`DELETE FROM t WHERE id = 1`, 'delete', { id: 1 }],
    ];
    for (const [sql, action, row] of steps) {
      await db.query(sql);
      const storeMs = await db.storeMs('t:1');
      const e = await sub.waitFor((x) => isLiveInvalidation('t:1')(x) && x.data.action === action, 10000);
      assert.equal(e.event, 'cache-invalidate');
      assert.equal(e.data.table, 't');
      assert.equal(e.data.id, 1);
      if (action === 'delete') {
        assert.equal(e.data.data?.id, 1, `the deleted row's key column: ${JSON.stringify(e.data.data)}`);
      } else {
        assert.deepEqual(e.data.data, row);
      }
      assertTimestamp(e.data.invalidatedAt, storeMs);
      assert.equal(e.data.replay, undefined, 'live events carry no replay flag');
    }
  });

  test('JSON style: a DELETE carries the whole old row in data', notifyOnly('the trigger sends OLD whole; the WAL sends the replica identity (wal.test.mjs)'), async (t) => {
    await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    await db.query(`INSERT INTO t VALUES (7, 'whole')`);
    await db.query(`DELETE FROM t WHERE id = 7`);
    const e = await sub.waitFor((x) => isLiveInvalidation('t:7')(x) && x.data.action === 'delete', 10000);
    assert.deepEqual(e.data.data, { id: 7, name: 'whole' });
  });

  test('text style: insert, update and delete each arrive as cacheKey + invalidatedAt', notifyOnly('text-style plain payloads on data_change_notification'), async (t) => {
    await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    const steps = [`INSERT INTO t2 VALUES (1, 'a')`, `UPDATE t2 SET name = 'b' WHERE id = 1`, `DELETE FROM t2 WHERE id = 1`];
    for (let i = 0; i < steps.length; i++) {
      await db.query(steps[i]);
      const storeMs = await db.storeMs('t2:1');
      const got = await sub.waitForCount(isLiveInvalidation('t2:1'), i + 1, 10000);
      const e = got[i];
      assertTimestamp(e.data.invalidatedAt, storeMs);
      assert.equal(e.data.action, undefined, 'a plain-text notification does not know the action');
      assert.equal(e.data.data, undefined);
    }
  });

  test('two tables changed in one transaction both arrive on the one channel', async (t) => {
    await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    await db.query(`BEGIN; INSERT INTO t VALUES (2, 'x'); INSERT INTO posts VALUES (2, 'y'); COMMIT;`);
    const a = await sub.waitFor(isLiveInvalidation('t:2'), 10000);
    const b = await sub.waitFor(isLiveInvalidation('posts:2'), 10000);
    assert.equal(a.data.table, 't');
    assert.equal(b.data.table, 'posts');
    assertTimestamp(a.data.invalidatedAt, await db.storeMs('t:2'));
    assertTimestamp(b.data.invalidatedAt, await db.storeMs('posts:2'));
  });

  test('BRIDGE_CHANNEL=cache-{table} routes each table to its own channel', async (t) => {
    await ownBridge(t, { BRIDGE_CHANNEL: 'cache-{table}', BRIDGE_CURSOR_NAME: 'per-table' });
    const posts = await subscribe(t, 'cache-posts');
    const ts = await subscribe(t, 'cache-t');
    await db.query(`BEGIN; INSERT INTO posts VALUES (3, 'p'); INSERT INTO t VALUES (3, 'q'); COMMIT;`);
    const p = await posts.waitFor(isLiveInvalidation('posts:3'), 10000);
    assert.equal(p.data.table, 'posts');
    assert.equal(p.data.action, 'insert');
    await ts.waitFor(isLiveInvalidation('t:3'), 10000);
    await sleep(500); // anything misrouted would have arrived by now
    assert.deepEqual(posts.events.filter((e) => e.data?.table !== 'posts'), [], 'cache-posts only carries posts');
    assert.deepEqual(ts.events.filter((e) => e.data?.table !== 't'), [], 'cache-t only carries t');
  });

  test('a row whose JSON exceeds 8000 bytes commits and arrives without its data', async (t) => {
    await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    await db.query(`INSERT INTO big VALUES (1, repeat('x', 10000))`);
    const e = await sub.waitFor(isLiveInvalidation('big:1'), 10000);
    assert.equal(e.data.action, 'insert');
    assert.equal(e.data.table, 'big');
    assert.equal(e.data.data, undefined, 'no row data');
    assert.ok(e.data.dataOmitted === true || e.data.data_omitted === true,
      `the event says the data was omitted: ${JSON.stringify(e.data)}`);
    assertTimestamp(e.data.invalidatedAt, await db.storeMs('big:1'));
  });

  // The by-hand way of the source under test: NOTIFY, or a logical decoding message.
  test('malformed and empty by-hand payloads are logged and do not stop later events', async (t) => {
    const bridge = await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    const mark = bridge.mark();
    await db.rawInvalidation('{not json');
    await db.rawInvalidation('');
    await db.query(`INSERT INTO t VALUES (4, 'after bad ones')`);
    const e = await sub.waitFor(isLiveInvalidation('t:4'), 10000);
    assert.equal(e.data.action, 'insert');
    assert.ok(bridge.running(), 'the bridge is still running');
    const complaints = bridge.linesSince(mark).filter((l) => WARN_OR_ERROR.test(l.text));
    assert.ok(complaints.length >= 2,
      `one warn/error line per bad notification; log since the bad ones:\n${bridge.output(mark)}`);
    assert.ok(complaints.some((l) => /not json/.test(l.text) || /cache_invalidation/.test(l.text)),
      `a line identifies the bad notification:\n${bridge.output(mark)}`);
  });

  test('a plain NOTIFY on data_change_notification with payload mykey arrives as cacheKey mykey', notifyOnly('NOTIFY on data_change_notification'), async (t) => {
    await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    await db.query(`NOTIFY data_change_notification, 'mykey'`);
    const e = await sub.waitFor(isLiveInvalidation('mykey'), 10000);
    assertTimestamp(e.data.invalidatedAt);
  });

  test('the bridge survives pg_terminate_backend and delivers what is written after it reconnects', async (t) => {
    const bridge = await defaultBridge();
    const sub = await subscribe(t, 'invalidations');
    const pidsOf = async () => (await db.query(
      `SELECT pid FROM pg_stat_activity WHERE application_name = 'cache-bridge'`)).rows.map((r) => r.pid);
    const old = await waitUntil(async () => {
      const p = await pidsOf();
      return p.length > 0 && p;
    }, 5000, { message: "a connection with application_name 'cache-bridge'" });
    const killed = await db.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'cache-bridge'`);
    assert.ok(killed.rows.length >= 1 && killed.rows.every((r) => r.ok));
    await waitUntil(async () => {
      const p = await pidsOf();
      return p.length > 0 && p.every((pid) => !old.includes(pid));
    }, 30000, { intervalMs: 100, message: 'the bridge reconnected to PostgreSQL' });
    await waitUntil(async () => (await fetch(`${bridge.opsUrl}/readyz`)).status === 200, 10000,
      { message: 'readyz 200 after the reconnect' });
    assert.ok(bridge.running(), 'the bridge is still running');
    await db.query(`INSERT INTO t VALUES (5, 'after reconnect')`);
    const e = await sub.waitFor(isLiveInvalidation('t:5'), 10000);
    assertTimestamp(e.data.invalidatedAt, await db.storeMs('t:5'));
  });

  test('a wrong app secret gives a clear error line (401 / credentials) and never prints the secret', async (t) => {
    const wrong = 'wrong-secret-0xDEADBEEF';
    const bridge = await ownBridge(t, { SOKETI_APP_SECRET: wrong, BRIDGE_CURSOR_NAME: 'wrong-secret' }, { ready: 'healthz' });
    await db.query(`INSERT INTO t VALUES (6, 'with a wrong secret')`);
    // Past the timestamp: a time ending in .401Z is no error line.
    const line = await bridge.waitForLine(/^\S+\s+\S+\s+.*(401|credential)/i, 15000).catch((err) => {
      throw new Error(`no error line mentioning 401 or credentials: ${err.message}`);
    });
    assert.match(line.text, WARN_OR_ERROR, `the line is a warn/error line: ${line.text}`);
    assert.ok(bridge.running(), 'a rejected publish is a runtime error: the bridge keeps running');
    await bridge.stop();
    assert.ok(!bridge.text().includes(wrong), `the secret appears in the log:\n${bridge.output()}`);
  });

  test('config errors: missing DATABASE_URL and a bad SOKETI_PORT exit 2 with one line per problem', async () => {
    const env = stack.bridgeEnv({ SOKETI_PORT: 'not-a-port' });
    delete env.DATABASE_URL;
    const r = await runBridge({ env, timeoutMs: 15000 });
    assert.equal(r.code, 2, `exit code 2; output:\n${r.output}`);
    const lines = r.lines.map((l) => l.text);
    const db = lines.filter((l) => l.includes('DATABASE_URL'));
    const port = lines.filter((l) => l.includes('SOKETI_PORT'));
    assert.ok(db.length >= 1, `a line names DATABASE_URL:\n${r.output}`);
    assert.ok(port.length >= 1, `a line names SOKETI_PORT:\n${r.output}`);
    assert.ok(!db.some((l) => port.includes(l)), `one line per problem:\n${r.output}`);
    assert.ok(!r.text.includes(SECRET), 'the secret is not printed');
  });

  test('real environment variables override the env file', async () => {
    await shared?.stop();
    const env = stack.bridgeEnv({ SOKETI_PORT: 'not-a-port' });
    delete env.DATABASE_URL;
    const b = await stack.startBridge({}, {
      env, processEnv: { SOKETI_PORT: String(stack.soketi.port), DATABASE_URL: db.url }, ready: 'readyz',
    });
    assert.ok(b.running());
    await b.stop();
  });

  test('no bridge log line contains the app secret', () => {
    assert.ok(stack.bridgesStarted.length > 0);
    for (const b of stack.bridgesStarted) {
      assert.ok(!b.text().includes(SECRET), `the secret appears in a bridge log:\n${b.output()}`);
    }
  });
});
