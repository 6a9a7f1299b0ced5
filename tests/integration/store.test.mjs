// The store, replay, webhooks and catch-up (issue 3), with real PostgreSQL, Soketi and bridge.
// A subscriber must end up with every key's newest timestamp, whether it subscribed late, the
// bridge was down, or its PostgreSQL connection was killed mid-stream.
//
// Run: node --test --test-concurrency=1 tests/integration/store.test.mjs
// (the whole suite: node --test --test-concurrency=1 tests/integration/)
// Needs build/bridge/cache-bridge (or CACHE_BRIDGE_BIN) and scripts/install-deps.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  http, isInvalidation, isLiveInvalidation, notifyOnly, signWebhook, sleep, source, startStack, waitUntil,
} from './harness.mjs';

const SECRET = 'it-store-secret-41d2';

describe('store: replay, webhooks, coalescing and catch-up', () => {
  let stack;
  let db;

  before(async () => {
    stack = await startStack({ soketi: { secret: SECRET } });
    db = stack.pg;
    await db.query(`
      CREATE TABLE r (id int PRIMARY KEY, v text);
      CREATE TABLE c (id int PRIMARY KEY, n int);
      CREATE TABLE k (id int PRIMARY KEY, v text);
      CREATE TABLE w (id int PRIMARY KEY, n int);
      CREATE TABLE widgets (id int PRIMARY KEY, v text);`);
    await db.attach('r', 'id', { rowData: true });
    await db.attach('c', 'id', { rowData: true });
    await db.attach('k', 'id');
    await db.attach('w', 'id');
    await db.attach('widgets', 'id');
  });
  after(async () => {
    await stack?.stop();
  });

  async function subscribe(t, channel) {
    const sub = await stack.subscribe(channel);
    t.after(() => sub.disconnect());
    return sub;
  }
  /** The bridge's stamps ({seq, ms}) of every key of a table with a known change (db.changes), once written. */
  async function stampsOf(table, bridge = 'default') {
    const out = new Map();
    for (const key of (await db.changes(table)).keys()) out.set(key, await db.stamp(key, { bridge, timeoutMs: 20000 }));
    return out;
  }
  /**
   * Waits until every key of `table` with a known change (the store, or the rows' commit times
   * under wal: db.changes) reached the subscriber by an event published after its latest
   * change, then checks that the newest event of each key carries the stamp the bridge stored
   * (live, caught-up and stored values agree).
   */
  async function waitForAll(sub, table, bridge, timeoutMs) {
    const changedAt = await db.changes(table);
    const newest = (key) => sub.events.filter(isInvalidation(key)).reduce((a, e) => (!a || e.data.seq > a.data.seq ? e : a), undefined);
    const missing = () => [...changedAt].filter(([key, ms]) => !(newest(key)?.data.invalidatedAt > ms));
    await waitUntil(() => missing().length === 0, timeoutMs, { intervalMs: 100, message: 'all keys delivered' })
      .catch(() => {
        const m = missing();
        throw new Error(`${m.length} of ${changedAt.size} keys never arrived after their change, e.g. ` +
          m.slice(0, 5).map(([key, ms]) => `${key} (changed at ${ms}, got ${JSON.stringify(newest(key)?.data)})`).join(', '));
      });
    for (const key of changedAt.keys()) {
      const stamp = await db.stamp(key, { bridge });
      await waitUntil(() => newest(key).data.seq >= stamp.seq, 5000, { message: `${key}'s stored stamp reached the client` });
      assert.equal(newest(key).data.seq, stamp.seq, `${key}: the newest event carries the stored stamp`);
      assert.equal(newest(key).data.invalidatedAt, stamp.ms);
    }
    return changedAt.size;
  }
  async function channelVacant(channel) {
    await waitUntil(async () => !(await stack.soketi.occupiedChannels()).includes(channel), 5000,
      { message: `${channel} has no subscribers` });
  }

  test('a late subscriber gets a replay of invalidated keys with their timestamps (channel_occupied)', async (t) => {
    await stack.useBridge();
    await channelVacant('invalidations');
    await db.query(`INSERT INTO r VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await db.query(`UPDATE r SET v = 'bb' WHERE id = 2`);
    await sleep(700); // the live events went out to nobody
    const stamps = await stampsOf('r');
    const sub = await subscribe(t, 'invalidations');
    for (const key of ['r:1', 'r:2', 'r:3']) {
      const e = await sub.waitFor((x) => isInvalidation(key)(x) && x.data.replay === true, 10000);
      assert.equal(e.data.seq, stamps.get(key).seq, `${key} carries the stamp its live event carried`);
      assert.equal(e.data.invalidatedAt, stamps.get(key).ms);
      assert.equal(e.data.table, 'r');
    }
  });

  test('cache-{key}: a replay answers a cache miss, and a second and third subscriber get the state too', async (t) => {
    await stack.useBridge({ BRIDGE_CHANNEL: 'cache-{key}', BRIDGE_CURSOR_NAME: 'per-key' });
    // A by-hand invalidation, published to nobody; a Soketi restart then forgets the event it
    // cached, so only the bridge's stamp can answer the first subscriber's cache miss.
    await db.invalidate('widget-7');
    const stamp = await db.stamp('widget-7', { bridge: 'per-key' });
    await stack.restartSoketi();
    const first = await subscribe(t, 'cache-widget-7');
    const e1 = await first.waitFor(isInvalidation('widget-7'), 10000);
    assert.equal(e1.data.replay, true);
    assert.equal(e1.data.seq, stamp.seq);
    assert.equal(e1.data.invalidatedAt, stamp.ms);
    for (const n of [2, 3]) {
      const sub = await subscribe(t, 'cache-widget-7');
      const e = await sub.waitFor(isInvalidation('widget-7'), 10000)
        .catch((err) => { throw new Error(`subscriber ${n}: ${err.message}`); });
      assert.equal(e.data.seq, stamp.seq, `subscriber ${n} has the state`);
    }
  });

  // Keys written by the triggers contain ':', which Pusher channel names do not allow; the bridge
  // escapes it (bridge/channel_name.h), so widgets:8 -> cache-widgets=3A8.
  test('cache-{key} with a trigger-written key: later subscribers get the last state', async (t) => {
    await stack.useBridge({ BRIDGE_CHANNEL: 'cache-{key}', BRIDGE_CURSOR_NAME: 'per-key' });
    await db.query(`INSERT INTO widgets VALUES (8, 'w')`);
    const stamp = await db.stamp('widgets:8', { bridge: 'per-key' });
    for (const n of [1, 2, 3]) {
      const sub = await subscribe(t, 'cache-widgets=3A8');
      const e = await sub.waitFor(isInvalidation('widgets:8'), 10000)
        .catch((err) => { throw new Error(`subscriber ${n}: ${err.message}`); });
      assert.equal(e.data.seq, stamp.seq, `subscriber ${n} has the state`);
      assert.equal(e.data.invalidatedAt, stamp.ms);
    }
  });

  test('webhooks: forged, unsigned, wrong-key -> 401, malformed -> 400, oversized -> 413; nothing published', async (t) => {
    await stack.useBridge();
    await db.query(`INSERT INTO r VALUES (10, 'x')`);
    const sub = await subscribe(t, 'invalidations');
    // The genuine channel_occupied replay arrives first; then the channel is quiet.
    await sub.waitFor((e) => isInvalidation('r:10')(e) && e.data.replay === true, 10000);
    await sleep(700);
    const quietCount = sub.events.length;

    const url = stack.webhookUrl;
    const body = JSON.stringify({ time_ms: Date.now(), events: [{ name: 'channel_occupied', channel: 'invalidations' }] });
    const post = (raw, headers) => http(url, { method: 'POST', body: raw, headers: { 'Content-Type': 'application/json', ...headers } });
    const key = stack.soketi.key;

    const forged = await post(body, { 'X-Pusher-Key': key, 'X-Pusher-Signature': signWebhook(body, 'not-the-secret') });
    assert.equal(forged.status, 401, 'forged signature');
    const unsigned = await post(body, { 'X-Pusher-Key': key });
    assert.equal(unsigned.status, 401, 'no signature');
    const wrongKey = await post(body, { 'X-Pusher-Key': 'other-key', 'X-Pusher-Signature': signWebhook(body, SECRET) });
    assert.equal(wrongKey.status, 401, 'wrong X-Pusher-Key');
    const truncated = '{"time_ms": 1, "events": [{"name": "channel_occupied"';
    const malformed = await post(truncated, { 'X-Pusher-Key': key, 'X-Pusher-Signature': signWebhook(truncated, SECRET) });
    assert.equal(malformed.status, 400, 'malformed body, correctly signed');
    const huge = JSON.stringify({ time_ms: 1, events: [{ name: 'channel_occupied', channel: 'invalidations', pad: 'x'.repeat(2 << 20) }] });
    const oversized = await post(huge, { 'X-Pusher-Key': key, 'X-Pusher-Signature': signWebhook(huge, SECRET) })
      .catch((err) => ({ status: `no response (${err.cause?.code ?? err.message})` }));
    assert.equal(oversized.status, 413, 'a 2 MiB webhook body');

    await sleep(1500);
    assert.deepEqual(sub.events.slice(quietCount), [], 'rejected webhooks publish nothing');

    // Control: the same body, correctly signed, does replay (so the silence above means something).
    const good = await post(body, { 'X-Pusher-Key': key, 'X-Pusher-Signature': signWebhook(body, SECRET) });
    assert.equal(good.status, 200, `a correctly signed webhook: ${good.text}`);
    await sub.waitFor((e) => sub.events.indexOf(e) >= quietCount && isInvalidation('r:10')(e) && e.data.replay === true, 10000);
  });

  test("two changes in one millisecond, and a replay merged with them: distinct seq in commit order, the later row wins", async (t) => {
    // The collision is forced: a frozen clock stamps every change with one invalidatedAt (a
    // minute ahead, as a bridge clock that runs ahead would), and the second update is written
    // only once the first has reached the client, so both go out live (nothing to coalesce).
    // A replay requested meanwhile reads the stamps and merges with what is pending. Whatever
    // is published live must still say what changed, and seq must order the changes.
    const frozenAt = Date.now() + 60000;
    await stack.useBridge({ BRIDGE_COALESCE_MS: 0, BRIDGE_TEST_FROZEN_CLOCK_MS: frozenAt, BRIDGE_CURSOR_NAME: 'frozen' });
    await db.query(`INSERT INTO r VALUES (30, 'a')`);
    const sub = await subscribe(t, 'invalidations');
    await sub.waitFor(isInvalidation('r:30'), 10000);
    const since = sub.events.length;
    const liveRow = (v) => (e) => sub.events.indexOf(e) >= since && isLiveInvalidation('r:30')(e) && e.data.data?.v === v;
    await db.query(`UPDATE r SET v = 'x' WHERE id = 30`);
    const first = await sub.waitFor(liveRow('x'), 10000);
    await db.query(`UPDATE r SET v = 'b' WHERE id = 30`);
    assert.equal((await stack.postWebhook([{ name: 'channel_occupied', channel: 'invalidations' }])).status, 200);
    const second = await sub.waitFor(liveRow('b'), 10000);
    const updates = [first, second];
    const lastSeq = Math.max(...updates.map((e) => e.data.seq));
    const stamp = await waitUntil(async () => {
      const st = await db.stamp('r:30', { bridge: 'frozen' });
      return st.seq === lastSeq && st;
    }, 10000, { message: 'the stored stamp is the second update\'s' });
    await sleep(1000); // the replay, and stragglers
    const got = sub.events.slice(since).filter(isInvalidation('r:30'));
    const live = got.filter((e) => e.data.replay !== true);
    const shown = JSON.stringify(got.map((e) => e.data));
    assert.ok(live.length >= 2, `both updates arrive live: ${shown}`);
    for (const e of got) assert.equal(e.data.invalidatedAt, Math.floor(frozenAt) + 1, `one millisecond for all: ${shown}`);
    for (const e of live) {
      assert.equal(e.data.action, 'update', `every live event for the updates says action=update: ${shown}`);
    }
    const seqs = live.map((e) => e.data.seq);
    assert.equal(new Set(seqs).size, seqs.length, `live events never share a seq: ${shown}`);
    assert.deepEqual([...seqs].sort((a, b) => a - b), seqs, `seq follows commit order: ${shown}`);
    // The client rule: per key, act only on a larger seq. Applied in arrival order, it must end
    // with the second update's row, whatever order the events came in.
    let held;
    for (const e of got) if (!held || e.data.seq > held.seq) held = e.data;
    assert.equal(held.seq, stamp.seq, `the client ends on the stored stamp: ${shown}`);
    assert.deepEqual(held.data, { id: 30, v: 'b' }, `and on the later row: ${shown}`);
  });

  test('1,000 updates to one key in ~1 s arrive as a handful of events, the last with the newest timestamp', async (t) => {
    await stack.useBridge({ BRIDGE_COALESCE_MS: 200 });
    await db.query(`INSERT INTO c VALUES (1, 0)`);
    const sub = await subscribe(t, 'invalidations');
    await sub.waitFor(isInvalidation('c:1'), 10000);
    await sleep(700);
    const since = sub.events.length;
    const t0 = Date.now();
    // One transaction per update, paced to take about a second.
    await db.query(`DO $$ BEGIN
        FOR i IN 1..1000 LOOP
          UPDATE c SET n = i WHERE id = 1;
          COMMIT;
          IF i % 10 = 0 THEN PERFORM pg_sleep(0.009); END IF;
        END LOOP;
      END $$`);
    const writeMs = Date.now() - t0;
    const newest = (await db.stamp('c:1')).ms;
    await sub.waitFor((e) => sub.events.indexOf(e) >= since && isInvalidation('c:1')(e) && e.data.invalidatedAt === newest, 10000);
    await sleep(1000); // stragglers
    const got = sub.events.slice(since).filter(isLiveInvalidation('c:1'));
    const summary = `${got.length} events for 1000 updates written in ${writeMs} ms: ${JSON.stringify(got.map((e) => e.data.invalidatedAt))}`;
    t.diagnostic(summary);
    assert.ok(got.length >= 1 && got.length <= 20, summary);
    const last = got.at(-1);
    assert.equal(last.data.invalidatedAt, newest, `the last event has the newest timestamp; ${summary}`);
    assert.equal(last.data.data?.n, 1000, 'the last event carries the last row');
    for (let i = 1; i < got.length; i++) {
      assert.ok(got[i].data.seq > got[i - 1].data.seq, `seq only moves forward; ${summary}`);
      assert.ok(got[i].data.invalidatedAt >= got[i - 1].data.invalidatedAt, `timestamps never go back; ${summary}`);
    }
  });

  test('changes to 100 keys committed while the bridge is stopped all arrive when it starts', async (t) => {
    // A short replay age keeps the startup replay out of it: only catch-up can deliver these.
    const env = { BRIDGE_CURSOR_NAME: 'catch-up', BRIDGE_REPLAY_MAX_AGE_S: 1 };
    const first = await stack.useBridge(env);
    await sleep(300);
    await first.stop();
    const sub = await subscribe(t, 'invalidations'); // its channel_occupied webhook finds no bridge
    for (let i = 0; i < 10; i++) {
      await db.query(`INSERT INTO k SELECT g, 'v' FROM generate_series($1::int, $2::int) g`, [i * 10 + 1, i * 10 + 10]);
    }
    await db.query(`UPDATE k SET v = 'v2' WHERE id % 7 = 0`);
    await sleep(1500); // older than BRIDGE_REPLAY_MAX_AGE_S
    const second = await stack.useBridge(env);
    const count = await waitForAll(sub, 'k', 'catch-up', 20000).catch((err) => {
      throw new Error(`${err.message}\nbridge log:\n${second.output()}`);
    });
    assert.equal(count, 100);
  });

  test("pg_terminate_backend while a writer commits steadily: every key's final timestamp arrives", async (t) => {
    const bridge = await stack.useBridge({ BRIDGE_CURSOR_NAME: 'writer' });
    await db.query(`INSERT INTO w SELECT g, 0 FROM generate_series(1, 20) g`);
    const sub = await subscribe(t, 'invalidations');
    const writer = await db.client({ applicationName: 'it-writer' });
    t.after(() => writer.end());
    const kills = [];
    let commits = 0;
    const killer = (async () => {
      for (const pause of [1000, 1500]) { // at about 1 s and 2.5 s into the 4 s of writing
        await sleep(pause);
        // Kill a connection, not a reconnect backoff: wait (bounded) for the bridge to be connected.
        await waitUntil(async () => (await db.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'cache-bridge'`)).rows.length > 0, 3000).catch(() => {});
        const r = await db.query(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'cache-bridge'`);
        kills.push(r.rows.length);
      }
    })();
    const end = Date.now() + 4000;
    while (Date.now() < end) {
      await writer.query('UPDATE w SET n = n + 1 WHERE id = $1', [(commits % 20) + 1]);
      commits++;
      await sleep(10);
    }
    await killer;
    assert.ok(kills[0] >= 1, `pg_terminate_backend hit the bridge's connection(s): ${JSON.stringify(kills)}`);
    await waitForAll(sub, 'w', 'writer', 30000).catch((err) => {
      throw new Error(`${err.message} (${commits} commits)\nbridge log:\n${bridge.output()}`);
    });
    assert.ok(bridge.running(), 'the bridge is still running');
  });

  test('a bridge restarted under a subscribed client replays to it without a new webhook', async (t) => {
    let bridge = await stack.useBridge();
    const sub = await subscribe(t, 'invalidations');
    await db.query(`INSERT INTO r VALUES (20, 'before restart')`);
    await sub.waitFor(isLiveInvalidation('r:20'), 10000);
    const stamp = await db.stamp('r:20');
    // Once the cursor (the slot, under wal) has passed r:20 the restart has nothing to catch
    // up: what reaches the client then can only be the startup replay.
    if (source === 'wal') {
      const lsn = await db.walLsn();
      await waitUntil(() => db.slotConfirmed(stack.slotOf(), lsn), 15000,
        { intervalMs: 200, message: 'the slot confirmed r:20' });
    } else {
      await waitUntil(async () => (await db.query(
        `SELECT c.resume_xid > s.writer_xid AS passed FROM cache_bridge_cursor c, cache_invalidated_at s
         WHERE c.name = 'default' AND s.cache_key = 'r:20'`)).rows.some((row) => row.passed), 10000,
      { intervalMs: 200, message: 'the catch-up cursor passed r:20' });
    }
    await bridge.stop();
    const since = sub.events.length;
    bridge = await stack.useBridge();
    const e = await sub.waitFor((x) => sub.events.indexOf(x) >= since && isInvalidation('r:20')(x), 15000)
      .catch((err) => { throw new Error(`${err.message}\nbridge log:\n${bridge.output()}`); });
    assert.equal(e.data.seq, stamp.seq, 'the replay carries the live event\'s stamp');
    assert.equal(e.data.invalidatedAt, stamp.ms);
    assert.equal(e.data.replay, true, 'it is a replay');
  });

  test('the bridge trims the log of what every cursor has passed; catch-up after it still delivers', notifyOnly('the log the triggers write'), async (t) => {
    // Only this bridge's cursor: the others of this file are behind and would hold every row.
    await db.query(`DELETE FROM cache_bridge_cursor`);
    const env = { BRIDGE_CURSOR_NAME: 'trim', BRIDGE_LOG_TRIM_S: 1 };
    let bridge = await stack.useBridge(env);
    const sub = await subscribe(t, 'invalidations');
    await db.query(`INSERT INTO k SELECT g, 't' FROM generate_series(3001, 3010) g`);
    await sub.waitFor(isLiveInvalidation('k:3010'), 10000);
    await waitUntil(async () => (await db.query(`SELECT count(*)::int AS n FROM cache_invalidation_log`)).rows[0].n === 0,
      15000, { intervalMs: 200, message: 'the log emptied' }).catch((err) => {
      throw new Error(`${err.message}\nbridge log:\n${bridge.output()}`);
    });
    await bridge.stop();
    await db.query(`UPDATE k SET v = 'after trim' WHERE id BETWEEN 3001 AND 3005`);
    const since = sub.events.length;
    bridge = await stack.useBridge(env);
    for (let id = 3001; id <= 3005; id++) {
      await sub.waitFor((e) => sub.events.indexOf(e) >= since && isInvalidation(`k:${id}`)(e), 15000);
    }
    assert.ok((await db.query(`SELECT count(*)::int AS n FROM cache_invalidated_at WHERE cache_key = 'k:3001'`)).rows[0].n <= 1);
  });

  test('no bridge log line contains the app secret', () => {
    for (const b of stack.bridgesStarted) {
      assert.ok(!b.text().includes(SECRET), `the secret appears in a bridge log:\n${b.output()}`);
    }
  });
});
