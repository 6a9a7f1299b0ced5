// The timestamp contract (issue 7), with real PostgreSQL, Soketi, bridge and pusher-js:
// every event for a change carries an invalidatedAt later than the moment the change became
// visible, live and replayed values agree, a payload cannot claim a time, every subscriber
// (not only the first) gets the current state, and channel names work for any key.
//
// Run: node --test --test-concurrency=1 tests/integration/contract.test.mjs
// Needs build/bridge/cache-bridge (or CACHE_BRIDGE_BIN) and scripts/install-deps.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { channelName } from '../../deploy/clients/channel-name.mjs';
import { subscribeInvalidations } from '../../deploy/clients/invalidations.mjs';
import {
  http, isInvalidation, isLiveInvalidation, notifyOnly, signWebhook, sleep, startStack, waitUntil,
} from './harness.mjs';

const SECRET = 'it-contract-secret-93fa';

describe('contract: timestamps after the commit, every subscriber served', () => {
  let stack;
  let db;

  before(async () => {
    stack = await startStack({ soketi: { secret: SECRET } });
    db = stack.pg;
    await db.query(`
      CREATE TABLE doc  (id int PRIMARY KEY, v text);
      CREATE TABLE note (id int PRIMARY KEY, v text);
      CREATE TABLE item (id text PRIMARY KEY, v text);`);
    await db.attach('doc', 'id');
    await db.attach('note', 'id', { style: 'text' });
    await db.attach('item', 'id', { rowData: true });
    await db.query(`
      INSERT INTO doc VALUES (1, 'old');
      INSERT INTO note VALUES (1, 'old');`);
  });
  after(async () => {
    await stack?.stop();
  });

  async function subscribe(t, channel) {
    const sub = await stack.subscribe(channel);
    t.after(() => sub.disconnect());
    return sub;
  }
  /** Posts a correctly signed channel_occupied webhook for `channel`: a replay to it. */
  async function askReplay(channel) {
    assert.equal((await stack.postWebhook([{ name: 'channel_occupied', channel }])).status, 200);
  }

  // A writer holds its transaction open for a second while another session reads the old row
  // at database time T1. A stamp taken inside the transaction would precede T1, and a client
  // that dropped "what it cached before invalidatedAt" would keep that stale read.
  for (const [style, change, key, options] of [
    ['JSON style', `UPDATE doc SET v = 'new' WHERE id = 1`, 'doc:1', {}],
    ['text style', `UPDATE note SET v = 'new' WHERE id = 1`, 'note:1', notifyOnly('a trigger style (under wal the JSON-style row says it all)')],
    ['a by-hand NOTIFY', `SELECT pg_notify('cache_invalidation', '{"cache_key":"hand:1","invalidated_at":1}')`, 'hand:1',
      notifyOnly("the payload's invalidated_at")],
    ['cache_invalidate()', `SELECT cache_invalidate('hand:2')`, 'hand:2', {}],
  ]) {
    test(`${style}: the live event and a later replay carry invalidatedAt > T1, a read of the old row during the open transaction`, options, async (t) => {
      await stack.useBridge();
      const sub = await subscribe(t, 'invalidations');
      await sleep(500); // the subscription's own replay is not the subject here
      const since = sub.events.length;
      const writer = await db.client();
      const reader = await db.client();
      t.after(() => Promise.all([writer.end(), reader.end()]));
      await writer.query('BEGIN');
      await writer.query(change);
      await sleep(500);
      const read = await reader.query(
        `SELECT extract(epoch FROM clock_timestamp()) * 1000 AS t1,
                (SELECT v FROM doc WHERE id = 1) AS doc, (SELECT v FROM note WHERE id = 1) AS note`);
      const t1 = Number(read.rows[0].t1);
      if (!key.startsWith('hand:')) assert.equal(read.rows[0][key.split(':')[0]], 'old', 'the reader sees the old row');
      await sleep(600); // the transaction stays open >= 1 s in all
      await writer.query('COMMIT');

      const live = await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation(key)(e), 10000);
      const margin = live.data.invalidatedAt - t1;
      t.diagnostic(`${style}: invalidatedAt - T1 = ${margin.toFixed(1)} ms (live)`);
      assert.ok(live.data.invalidatedAt > t1, `live invalidatedAt ${live.data.invalidatedAt} > T1 ${t1}`);

      const stamp = await db.stamp(key);
      assert.equal(live.data.seq, stamp.seq, 'the store holds what went out live');
      const mark = sub.events.length;
      await askReplay('invalidations');
      const replay = await sub.waitFor((e) => sub.events.indexOf(e) >= mark && isInvalidation(key)(e) && e.data.replay === true, 10000);
      assert.equal(replay.data.invalidatedAt, live.data.invalidatedAt, 'the replay agrees with the live event');
      assert.equal(replay.data.seq, live.data.seq);
      assert.ok(replay.data.invalidatedAt > t1);
    });
  }

  test('a far-future payload timestamp is not taken: a later real change still arrives as newer', notifyOnly("the payload's invalidated_at"), async (t) => {
    const bridge = await stack.useBridge();
    const sub = await subscribe(t, 'invalidations');
    await sleep(500);
    const since = sub.events.length;
    const farFuture = 99999999999999;
    await db.query(`SELECT pg_notify('cache_invalidation', $1)`,
      [JSON.stringify({ cache_key: 'forged:1', invalidated_at: farFuture })]);
    const forged = await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation('forged:1')(e), 10000);
    assert.ok(forged.data.invalidatedAt < Date.now() + 5000, `stamped at receipt, not ${farFuture}: ${forged.data.invalidatedAt}`);
    await bridge.waitForLine(/claims invalidated_at 99999999999999, later than its receipt/, 5000);
    const metrics = await http(`${stack.opsUrl}/metrics`);
    assert.match(metrics.text, /^cache_bridge_payload_timestamps_clamped_total 1$/m);

    await db.query(`SELECT pg_notify('cache_invalidation', '{"cache_key":"forged:1"}')`);
    const real = await sub.waitFor((e) => isLiveInvalidation('forged:1')(e) && e.data.seq > forged.data.seq, 10000);
    assert.ok(real.data.invalidatedAt >= forged.data.invalidatedAt, 'the real change is newer by the client rule');
  });

  test('the store is written only by the triggers: PUBLIC may not call cache_invalidation_record, a writer without rights still writes', notifyOnly('the store and the triggers that write it'), async () => {
    await db.query(`
      DROP ROLE IF EXISTS it_writer;
      CREATE ROLE it_writer LOGIN;
      GRANT SELECT, INSERT, UPDATE ON doc TO it_writer;`);
    const url = db.url.replace('postgres@', 'it_writer@');
    const { default: pg } = await import('../../scripts/node_modules/pg/lib/index.js');
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    try {
      await assert.rejects(writer.query(`SELECT cache_invalidation_record('doc:999', 'doc')`), /permission denied/);
      await assert.rejects(writer.query(`SELECT pg_notify('x', '') FROM cache_invalidated_at`), /permission denied/);
      await writer.query(`INSERT INTO doc VALUES (50, 'by a writer without store rights')`);
      assert.ok(await db.storeMs('doc:50'), 'the trigger wrote the store');
    } finally {
      await writer.end();
    }
  });

  // Soketi sends channel_occupied only for a channel's first subscriber; every later one gets
  // the state from GET /snapshot (deploy/clients/invalidations.mjs): subscribe, then fetch, then
  // merge by seq. A change committed between the two must not be lost.
  for (const [kind, template, channelOf] of [
    ['public', 'invalidations', () => 'invalidations'],
    ['private-', 'private-invalidations', () => 'private-invalidations'],
    ['cache-', 'cache-{table}', (table) => `cache-${table}`],
  ]) {
    test(`${kind} channel: a second subscriber gets every key's current stamp, and a change between its subscribe and its snapshot`, async (t) => {
      const name = `snap-${kind.replace(/\W/g, '')}`;
      await stack.useBridge({ BRIDGE_CHANNEL: template, BRIDGE_CURSOR_NAME: name });
      const channel = channelOf('item');
      const first = await subscribe(t, channel);
      await db.query(`INSERT INTO item SELECT 'i' || g, 'v' FROM generate_series(1, 30) g
                      ON CONFLICT (id) DO UPDATE SET v = excluded.v || '2'`);
      await first.waitFor(isLiveInvalidation('item:i30'), 10000);

      const pusher = stack.pusherClient();
      t.after(() => pusher.disconnect());
      const got = new Map();
      let betweenSeq;
      const sub = subscribeInvalidations(pusher, {
        channel,
        snapshotUrl: `${stack.baseUrl}/snapshot`,
        onInvalidate: (data) => got.set(data.cacheKey, data),
        onError: (err) => t.diagnostic(`snapshot client: ${err.message}`),
        // Subscribed, snapshot not yet asked for: a change commits and goes out live now.
        fetch: async (url, opts) => {
          if (betweenSeq === undefined) {
            await db.query(`UPDATE item SET v = 'between' WHERE id = 'i7'`);
            betweenSeq = (await waitUntil(async () => {
              const st = await db.stamp('item:i7', { bridge: name });
              return got.get('item:i7')?.seq === st.seq && st;
            }, 10000, { message: 'the change between subscribe and snapshot arrived live' })).seq;
          }
          return fetch(url, opts);
        },
      });
      t.after(() => sub.unsubscribe());
      const ready = await sub.ready;
      assert.equal(ready.truncated, false);
      for (let i = 1; i <= 30; i++) {
        const key = `item:i${i}`;
        const stamp = await db.stamp(key, { bridge: name });
        assert.equal(got.get(key)?.seq, stamp.seq, `${key}: the second subscriber holds the stored stamp`);
        assert.equal(got.get(key)?.invalidatedAt, stamp.ms);
      }
      assert.equal(got.get('item:i7').seq, betweenSeq, 'the change between subscribe and snapshot is kept');
      assert.equal(got.get('item:i7').data?.v, 'between', 'with its row, from the live event');
    });
  }

  test('GET /snapshot refuses a private channel without a valid authorization, and answers with CORS', async () => {
    await stack.useBridge({ BRIDGE_CHANNEL: 'private-invalidations', BRIDGE_CURSOR_NAME: 'snap-private' });
    const base = `${stack.baseUrl}/snapshot?channel=private-invalidations`;
    assert.equal((await http(base)).status, 401, 'no authorization');
    const forged = `${stack.soketi.key}:${signWebhook('1.2:private-invalidations', 'not-the-secret')}`;
    assert.equal((await http(`${base}&socket_id=1.2&auth=${encodeURIComponent(forged)}`)).status, 401, 'forged');
    const good = `${stack.soketi.key}:${signWebhook('1.2:private-invalidations', SECRET)}`;
    const ok = await http(`${base}&socket_id=1.2&auth=${encodeURIComponent(good)}`);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers.get('access-control-allow-origin'), '*');
    assert.ok(JSON.parse(ok.text).invalidations.length >= 30);
    assert.equal((await http(`${stack.baseUrl}/snapshot?channel=bad%20name`)).status, 400);
  });

  test('GET /snapshot is rate-limited with 429 and Retry-After', async () => {
    await stack.useBridge({ BRIDGE_SNAPSHOT_MAX_PER_SEC: 2 });
    // Until the bucket (2 tokens) is empty: a few requests, however slow the machine.
    const statuses = [];
    let retryAfter;
    for (let i = 0; i < 50 && !statuses.includes(429); i++) {
      const r = await http(`${stack.baseUrl}/snapshot?channel=invalidations`);
      statuses.push(r.status);
      retryAfter ??= r.headers.get('retry-after') ?? undefined;
    }
    assert.ok(statuses.includes(200) && statuses.includes(429), `statuses ${statuses}`);
    assert.ok(Number(retryAfter) >= 1, `Retry-After ${retryAfter}`);
  });

  test('replays find the cache-{key} channels of non-ASCII, emoji and 300-character keys', async (t) => {
    await stack.useBridge({ BRIDGE_CHANNEL: 'cache-{key}', BRIDGE_CURSOR_NAME: 'odd-keys' });
    const keys = ['item:café', 'item:😀', `item:${'x'.repeat(300)}`];
    for (const key of keys) await db.query(`INSERT INTO item VALUES ($1, 'v')`, [key.slice(5)]);
    const stamps = await Promise.all(keys.map((key) => db.stamp(key, { bridge: 'odd-keys' })));
    await stack.restartSoketi(); // forget the cached live events: only a replay can answer now
    for (const [i, key] of keys.entries()) {
      const channel = await channelName('cache-{key}', 'item', key);
      assert.ok(channel.length <= 200, `${channel.length} characters`);
      const sub = await subscribe(t, channel);
      const e = await sub.waitFor(isInvalidation(key), 10000)
        .catch((err) => { throw new Error(`${key} on ${channel}: ${err.message}`); });
      assert.equal(e.data.replay, true);
      assert.equal(e.data.seq, stamps[i].seq);
    }
  });

  test('cache-{key} keeps posts:1 and posts-1 apart', async (t) => {
    await stack.useBridge({ BRIDGE_CHANNEL: 'cache-{key}', BRIDGE_CURSOR_NAME: 'odd-keys' });
    const a = await subscribe(t, await channelName('cache-{key}', '', 'posts:1'));
    const b = await subscribe(t, await channelName('cache-{key}', '', 'posts-1'));
    await db.invalidate('posts:1');
    await db.invalidate('posts-1');
    await a.waitFor(isInvalidation('posts:1'), 10000);
    await b.waitFor(isInvalidation('posts-1'), 10000);
    await sleep(300);
    // (A replay of the same stamp may follow the live event: the subscription's webhook races
    // the invalidation. What must never happen is one key's event on the other's channel.)
    assert.deepEqual([...new Set(a.events.map((e) => e.data.cacheKey))], ['posts:1']);
    assert.deepEqual([...new Set(b.events.map((e) => e.data.cacheKey))], ['posts-1']);
  });

  test('a changed BRIDGE_CHANNEL routes the stored stamps anew; a new bridge name starts from the store', notifyOnly('catch-up from cache_invalidated_at (re-routing under wal: wal.test.mjs)'), async () => {
    const snapshot = async (channel) => JSON.parse((await http(`${stack.baseUrl}/snapshot?channel=${channel}`)).text);
    // Keys in the store that no bridge named 'renamed' ever stamped (as after an upgrade).
    await db.query(`INSERT INTO item VALUES ('r1', 'v'), ('r2', 'v')`);
    const bridge = await stack.useBridge({ BRIDGE_CHANNEL: 'cache-{table}', BRIDGE_CURSOR_NAME: 'renamed' });
    await bridge.waitForLine(/stamps: \d+ key\(s\) from the store stamped for replays/, 5000);
    const before = await snapshot('cache-item');
    const r1 = before.invalidations.find((x) => x.cacheKey === 'item:r1');
    assert.ok(r1, `the store's key is served: ${JSON.stringify(before)}`);

    const moved = await stack.useBridge({ BRIDGE_CHANNEL: 'moved-{table}', BRIDGE_CURSOR_NAME: 'renamed' });
    await moved.waitForLine(/stamps: \d+ key\(s\) routed by the new BRIDGE_CHANNEL/, 5000);
    const after = await snapshot('moved-item');
    assert.deepEqual(after.invalidations.find((x) => x.cacheKey === 'item:r1'), r1, 'same stamp, new channel');
    assert.deepEqual((await snapshot('cache-item')).invalidations, [], 'nothing left on the old channel');
  });

  test('no bridge log line contains the app secret', () => {
    for (const b of stack.bridgesStarted) {
      assert.ok(!b.text().includes(SECRET), `the secret appears in a bridge log:\n${b.output()}`);
    }
  });
});
