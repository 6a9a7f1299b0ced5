// The lean triggers of sql/cache_invalidation.sql (statement-level, with transition tables) and
// attach(..., 'wal'), end to end: real PostgreSQL, Soketi, the bridge and a pusher-js subscriber.
// What a user observes: the events a subscriber receives, writes that commit (or, with the row
// triggers of before, deadlock), the NOTIFYs PostgreSQL carries, the publication and registry.
//
// Run: node --test --test-concurrency=1 tests/integration/triggers.test.mjs
// Needs build/bridge/cache-bridge (or CACHE_BRIDGE_BIN) and scripts/install-deps.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  http, isLiveInvalidation, notifyOnly, sleep, sourceIndependent, startPostgres, startStack, waitUntil,
} from './harness.mjs';

/** The bridge's notifications_received_total for a PostgreSQL channel. */
async function notificationsReceived(opsUrl, pgChannel = 'cache_invalidation') {
  const { text } = await http(`${opsUrl}/metrics`);
  const m = text.match(new RegExp(`^cache_bridge_notifications_received_total\\{pg_channel="${pgChannel}"\\} (\\d+)$`, 'm'));
  assert.ok(m, `metrics have notifications_received_total for ${pgChannel}:\n${text}`);
  return Number(m[1]);
}

describe('lean triggers: statement-level, set-based, one NOTIFY for many keys', notifyOnly('the triggers, their NOTIFYs and the bridge that LISTENs'), () => {
  let stack;
  let db;
  let bridge;
  let sub;
  let listener; // our own LISTEN, to see the NOTIFYs themselves
  const notes = [];

  before(async () => {
    stack = await startStack({ source: 'notify' });
    db = stack.pg;
    await db.query(`
      CREATE TABLE bulk (k text PRIMARY KEY, n int NOT NULL DEFAULT 0);
      INSERT INTO bulk SELECT 'item-' || lpad(g::text, 20, '0') FROM generate_series(1, 1000) AS g;
      SELECT cache_invalidation_attach('bulk', 'k');
      CREATE TABLE kc (id int PRIMARY KEY, title text);
      SELECT cache_invalidation_attach('kc', 'id');
      CREATE TABLE nk (pk int PRIMARY KEY, k text);
      SELECT cache_invalidation_attach('nk', 'k');
      CREATE TABLE posts (id int PRIMARY KEY, title text);
      CREATE SCHEMA other;
      CREATE TABLE other.posts (id int PRIMARY KEY, title text);
      SELECT cache_invalidation_attach('posts', 'id');
      SELECT cache_invalidation_attach('other.posts', 'id');
      CREATE TABLE tx (id int PRIMARY KEY, name text);
      SELECT cache_invalidation_attach('tx', 'id', 'text');
      CREATE TABLE ev (id int NOT NULL, day date NOT NULL, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
      CREATE TABLE ev_2020 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
      CREATE TABLE ev_2021 PARTITION OF ev FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
      SELECT cache_invalidation_attach('ev', 'id');`);
    bridge = await stack.startBridge();
    sub = await stack.subscribe('invalidations');
    listener = await db.client();
    listener.on('notification', (n) => notes.push({ channel: n.channel, payload: n.payload }));
    await listener.query('LISTEN cache_invalidation');
    await listener.query('LISTEN data_change_notification');
    await sleep(500); // the subscription's own replay goes first
  });
  after(async () => {
    await sub?.disconnect();
    await stack?.stop();
  });

  const liveSince = (since, pred) => sub.events.slice(since).filter((e) => e.data?.replay !== true && pred(e));

  test('a 1,000-row UPDATE delivers every key, in several NOTIFYs each under 8000 bytes', async () => {
    const since = sub.events.length;
    const before = await notificationsReceived(bridge.opsUrl);
    notes.length = 0;
    await db.query(`UPDATE bulk SET n = n + 1`);
    const want = new Set(Array.from({ length: 1000 }, (_, i) => `bulk:item-${String(i + 1).padStart(20, '0')}`));
    await waitUntil(() => {
      const got = new Set(liveSince(since, (e) => e.data.action === 'update' && e.data.table === 'bulk').map((e) => e.data.cacheKey));
      return [...want].every((k) => got.has(k));
    }, 30000, { message: 'all 1,000 keys delivered as updates' });

    await waitUntil(() => notes.length >= 2, 5000, { message: 'our LISTEN saw the NOTIFYs' });
    const payloads = notes.filter((n) => n.channel === 'cache_invalidation').map((n) => n.payload);
    assert.ok(payloads.length >= 3 && payloads.length <= 5,
      `1,000 keys of 27 bytes in a few NOTIFYs, not one per row: ${payloads.length}`);
    const ids = [];
    for (const p of payloads) {
      assert.ok(Buffer.byteLength(p) < 8000, `payload of ${Buffer.byteLength(p)} bytes`);
      const j = JSON.parse(p);
      assert.deepEqual(Object.keys(j), ['table', 'action', 'ids']);
      assert.equal(j.table, 'bulk');
      assert.equal(j.action, 'update');
      ids.push(...j.ids);
    }
    assert.equal(ids.length, 1000);
    assert.deepEqual(new Set(ids.map((id) => `bulk:${id}`)), want);
    const after = await waitUntil(async () => {
      const n = await notificationsReceived(bridge.opsUrl);
      return n - before >= payloads.length && n;
    }, 5000, { message: 'the bridge counted every NOTIFY' });
    assert.equal(after - before, payloads.length, 'the bridge received exactly those NOTIFYs');
    const store = await db.query(`SELECT count(*)::int AS n FROM cache_invalidated_at WHERE table_name = 'bulk'`);
    assert.equal(store.rows[0].n, 1000, 'the store has every key');
  });

  test('a key change delivers the old key as a delete and the new key as an update', async () => {
    await db.query(`INSERT INTO kc VALUES (1, 'a')`);
    await sub.waitFor(isLiveInvalidation('kc:1'), 10000);
    const since = sub.events.length;
    await db.query(`UPDATE kc SET id = 2 WHERE id = 1`);
    const old = await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation('kc:1')(e), 10000);
    const now = await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation('kc:2')(e), 10000);
    assert.equal(old.data.action, 'delete');
    assert.equal(old.data.id, 1);
    assert.equal(now.data.action, 'update');
    assert.equal(now.data.id, 2);
    assert.equal(now.data.table, 'kc');
  });

  test('NULL keys never fail a write: skipped, the other keys still go out', async () => {
    const since = sub.events.length;
    await db.query(`INSERT INTO nk VALUES (1, NULL)`); // the row triggers raised here
    await db.query(`INSERT INTO nk VALUES (2, 'b'), (3, NULL)`);
    await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation('nk:b')(e) && e.data.action === 'insert', 10000);
    await db.query(`UPDATE nk SET k = NULL WHERE pk = 2`); // only the old key is stale
    await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation('nk:b')(e) && e.data.action === 'delete', 10000);
    await db.query(`UPDATE nk SET k = NULL`);
    await db.query(`DELETE FROM nk`);
    const store = await db.query(`SELECT cache_key FROM cache_invalidated_at WHERE table_name = 'nk' ORDER BY 1`);
    assert.deepEqual(store.rows.map((r) => r.cache_key), ['nk:b']);
  });

  test('a key too long for any NOTIFY: a warning, the store row kept, the statement\'s other keys sent', async () => {
    const since = sub.events.length;
    const warnings = [];
    const c = await db.client();
    c.on('notice', (n) => warnings.push(n.message));
    try {
      await c.query(`INSERT INTO nk VALUES (10, repeat('k', 9000)), (11, 'short')`);
    } finally {
      await c.end();
    }
    assert.ok(warnings.some((m) => /key of 9003 bytes is too long to NOTIFY/.test(m)), `warnings: ${warnings}`);
    await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation('nk:short')(e), 10000);
    const store = await db.query(`SELECT count(*)::int AS n FROM cache_invalidated_at WHERE cache_key = 'nk:' || repeat('k', 9000)`);
    assert.equal(store.rows[0].n, 1, 'the store has the long key (replay serves it)');
    await db.query(`DELETE FROM nk WHERE pk IN (10, 11)`);
  });

  test('two transactions changing overlapping keys (non-unique key column) in opposite orders do not deadlock', async () => {
    // grp is the key: rows 1 and 4 share x, 2 and 3 share y. A changes rows 1, 2 (keys x, y), B
    // rows 3, 4 (keys y, x): no row in common, but the store's rows in opposite orders. A slow
    // AFTER ROW trigger (named after cache_invalidation, so it fires after it for each row)
    // interleaves the two: the row triggers, when the store was a table of one row per key,
    // locked x in A and y in B, then each waited for the other.
    await db.query(`
      CREATE TABLE dl (id int PRIMARY KEY, grp text NOT NULL, v int NOT NULL DEFAULT 0);
      INSERT INTO dl (id, grp) VALUES (1, 'x'), (2, 'y'), (3, 'y'), (4, 'x');
      CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
      CREATE TRIGGER zz_slow AFTER UPDATE ON dl FOR EACH ROW EXECUTE FUNCTION slow_row();`);
    const a = await db.client();
    const b = await db.client();
    const race = async () => {
      const run = async (c, ids, delayMs) => {
        await sleep(delayMs);
        await c.query('BEGIN');
        try {
          await c.query(`UPDATE dl SET v = v + 1 WHERE id = ANY($1)`, [ids]);
          await c.query('COMMIT');
          return 'committed';
        } catch (err) {
          await c.query('ROLLBACK');
          return err.code === '40P01' ? 'deadlock' : `error ${err.code}: ${err.message}`;
        }
      };
      return Promise.all([run(a, [1, 2], 0), run(b, [3, 4], 200)]);
    };
    try {
      // The control: the row trigger of before (still installed for existing attaches).
      await db.query(`
        SELECT cache_invalidation_detach('dl');
        CREATE TRIGGER cache_invalidation AFTER INSERT OR UPDATE OR DELETE ON dl FOR EACH ROW
          EXECUTE FUNCTION cache_invalidation_notify_json('grp', 'cache_invalidation', 'dl', 'keys');`);
      // They deadlocked on the per-key store rows of before; the log they now append to locks
      // no row, so they commit too.
      const legacy = await race();
      assert.deepEqual(legacy, ['committed', 'committed'], 'the row triggers append to the log: no store row locked');

      await db.query(`SELECT cache_invalidation_attach('dl', 'grp')`); // rerun attach: the lean triggers
      const triggers = await db.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'dl'::regclass ORDER BY 1`);
      assert.ok(!triggers.rows.some((r) => r.tgname === 'cache_invalidation'), 'attach replaced the row trigger');
      const since = sub.events.length;
      const lean = await race();
      assert.deepEqual(lean, ['committed', 'committed']);
      for (const key of ['dl:x', 'dl:y']) {
        await sub.waitFor((e) => sub.events.indexOf(e) >= since && isLiveInvalidation(key)(e), 10000);
      }
    } finally {
      await a.end();
      await b.end();
    }
  });

  test('tables of the same name in public and in another schema keep their keys apart', async () => {
    await db.query(`BEGIN; INSERT INTO posts VALUES (1, 'p'); INSERT INTO other.posts VALUES (1, 'o'); COMMIT;`);
    const p = await sub.waitFor(isLiveInvalidation('posts:1'), 10000);
    const o = await sub.waitFor(isLiveInvalidation('other.posts:1'), 10000);
    assert.equal(p.data.table, 'posts');
    assert.equal(o.data.table, 'other.posts');
    const reg = await db.query(`SELECT relid::text, table_name FROM cache_invalidation_table
                                 WHERE table_name LIKE '%posts' ORDER BY 2`);
    assert.deepEqual(reg.rows, [{ relid: 'other.posts', table_name: 'other.posts' }, { relid: 'posts', table_name: 'posts' }]);
  });

  test('TRUNCATE delivers one event for the table: cacheKey is its name, action truncate', async () => {
    const since = sub.events.length;
    await db.query(`TRUNCATE posts`);
    const e = await sub.waitFor((x) => sub.events.indexOf(x) >= since && isLiveInvalidation('posts')(x), 10000);
    assert.equal(e.data.action, 'truncate');
    assert.equal(e.data.table, 'posts');
    assert.ok(await db.storeMs('posts'), 'the store has the table key');
    await db.query(`TRUNCATE tx`); // text style: the plain table name
    // TRUNCATE tx committed after TRUNCATE posts: once tx is here, an event of the posts
    // statement for other.posts would be too.
    await sub.waitFor((x) => sub.events.indexOf(x) >= since && isLiveInvalidation('tx')(x), 10000);
    assert.ok(!liveSince(since, (x) => x.data.cacheKey === 'other.posts').length, 'other.posts is not truncated');
  });

  test('a partitioned table: writes through the root and straight to a partition, keyed by the root', async () => {
    const since = sub.events.length;
    await db.query(`INSERT INTO ev VALUES (1, '2020-03-01'), (2, '2021-03-01')`);
    await db.query(`INSERT INTO ev_2021 VALUES (3, '2021-04-01')`);
    await db.query(`UPDATE ev SET day = '2021-05-01' WHERE id = 1`); // moves to another partition
    // ev:1's insert may merge into its update (coalescing: one pending entry per key, the
    // newest wins), so only its final action is certain.
    for (const [key, action] of [['ev:2', 'insert'], ['ev:3', 'insert'], ['ev:1', 'update']]) {
      const e = await sub.waitFor((x) => sub.events.indexOf(x) >= since && isLiveInvalidation(key)(x) && x.data.action === action, 10000);
      assert.equal(e.data.table, 'ev');
    }
    await db.query(`DELETE FROM ev_2020`);
    await db.query(`DELETE FROM ev WHERE id = 3`);
    await sub.waitFor((x) => sub.events.indexOf(x) >= since && isLiveInvalidation('ev:3')(x) && x.data.action === 'delete', 10000);
  });

  test('text style still delivers plain keys, the old key of a key change too', async () => {
    notes.length = 0;
    const since = sub.events.length;
    await db.query(`INSERT INTO tx VALUES (1, 'a'), (2, 'b')`);
    await db.query(`UPDATE tx SET id = 3 WHERE id = 1`);
    for (const key of ['tx:1', 'tx:2', 'tx:3']) {
      const e = await sub.waitFor((x) => sub.events.indexOf(x) >= since && isLiveInvalidation(key)(x), 10000);
      assert.equal(e.data.action, undefined, 'a plain-text notification does not know the action');
    }
    await waitUntil(() => notes.length >= 4, 5000, { message: 'four NOTIFYs' });
    const texts = notes.filter((n) => n.channel === 'data_change_notification').map((n) => n.payload);
    assert.deepEqual(texts.slice(0, 2).sort(), ['tx:1', 'tx:2']);
    assert.deepEqual(texts.slice(2), ['tx:1', 'tx:3'], 'the old key first, then the new one');
  });

  test("cache_invalidate('k') delivers k; any writer may call it, none may call the triggers' helpers", async () => {
    await db.query(`SELECT cache_invalidate('k')`);
    await sub.waitFor(isLiveInvalidation('k'), 10000);
    assert.ok(await db.storeMs('k'), 'the store has the key');
    await db.query(`DROP ROLE IF EXISTS it_lean_writer; CREATE ROLE it_lean_writer LOGIN; GRANT INSERT ON kc TO it_lean_writer;`);
    const { default: pg } = await import('../../scripts/node_modules/pg/lib/index.js');
    const writer = new pg.Client({ connectionString: db.url.replace('postgres@', 'it_lean_writer@') });
    await writer.connect();
    try {
      await writer.query(`SELECT cache_invalidate('page:/home')`);
      await sub.waitFor(isLiveInvalidation('page:/home'), 10000);
      await assert.rejects(writer.query(
        `SELECT cache_invalidation_changed('kc', 'cache_invalidation', 'json', 'insert', ARRAY['1'], NULL)`), /permission denied/);
      await assert.rejects(writer.query(`SELECT cache_invalidation_truncated('kc', 'cache_invalidation', 'json')`), /permission denied/);
      await writer.query(`INSERT INTO kc VALUES (50, 'by a writer without store rights')`);
      await sub.waitFor(isLiveInvalidation('kc:50'), 10000);
    } finally {
      await writer.end();
    }
  });

  test("attach 'wal' where wal_level is not logical: a warning, not an error", async () => {
    const warnings = [];
    const c = await db.client();
    c.on('notice', (n) => warnings.push(n.message));
    try {
      await c.query(`CREATE TABLE w (id int PRIMARY KEY); SELECT cache_invalidation_attach('w', 'id', 'wal')`);
    } finally {
      await c.end();
    }
    assert.ok(warnings.some((m) => /wal_level is replica, not logical/.test(m)), `warnings: ${warnings}`);
    const reg = await db.query(`SELECT source FROM cache_invalidation_table WHERE relid = 'w'::regclass`);
    assert.equal(reg.rows[0].source, 'wal');
  });
});

describe("attach(..., 'wal') on a PostgreSQL with wal_level logical", sourceIndependent, () => {
  let db;

  before(async () => {
    db = await startPostgres({ settings: { wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' } });
  });
  after(async () => {
    await db?.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots`).catch(() => {});
    await db?.stop();
  });

  test('adds the table to the publication without a trigger, and writes the registry', async () => {
    await db.query(`
      CREATE TABLE wposts (id int PRIMARY KEY, title text);
      SELECT cache_invalidation_attach('wposts', 'id');  -- first with triggers: wal replaces them
      SELECT cache_invalidation_attach('wposts', 'id', 'wal');`);
    const pub = await db.query(`SELECT pubname, pubviaroot FROM pg_publication`);
    assert.deepEqual(pub.rows, [{ pubname: 'cache_invalidation', pubviaroot: true }]);
    const members = await db.query(`SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'cache_invalidation'`);
    assert.deepEqual(members.rows, [{ schemaname: 'public', tablename: 'wposts' }]);
    const triggers = await db.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'wposts'::regclass`);
    assert.deepEqual(triggers.rows, [], 'no trigger');
    const fns = await db.query(`SELECT proname FROM pg_proc WHERE proname = 'cache_invalidation_t' || 'wposts'::regclass::oid`);
    assert.deepEqual(fns.rows, [], 'the generated trigger function is gone');
    const reg = await db.query(`SELECT relid::text, table_name, key_column::text, source, style, row_data, publication::text, notify_channel
                                  FROM cache_invalidation_table`);
    assert.deepEqual(reg.rows, [{ relid: 'wposts', table_name: 'wposts', key_column: 'id', source: 'wal', style: null,
      row_data: false, publication: 'cache_invalidation', notify_channel: null }]);
    // Attaching again is a no-op; attaching with the notify source takes it out again.
    await db.query(`SELECT cache_invalidation_attach('wposts', 'id', 'wal')`);
    await db.query(`SELECT cache_invalidation_attach('wposts', 'id')`);
    const left = await db.query(`SELECT tablename FROM pg_publication_tables WHERE pubname = 'cache_invalidation'`);
    assert.deepEqual(left.rows, []);
    const back = await db.query(`SELECT source, style FROM cache_invalidation_table WHERE relid = 'wposts'::regclass`);
    assert.deepEqual(back.rows, [{ source: 'notify', style: 'json' }]);
    await db.query(`SELECT cache_invalidation_attach('wposts', 'id', 'wal'); SELECT cache_invalidation_detach('wposts')`);
    assert.deepEqual((await db.query(`SELECT tablename FROM pg_publication_tables`)).rows, []);
    assert.deepEqual((await db.query(`SELECT * FROM cache_invalidation_table`)).rows, []);
  });

  test('refuses a key column the replica identity does not cover, with a hint; succeeds after REPLICA IDENTITY FULL', async () => {
    await db.query(`CREATE TABLE art (id int PRIMARY KEY, slug text NOT NULL)`);
    const err = await db.query(`SELECT cache_invalidation_attach('art', 'slug', 'wal')`).then(() => null, (e) => e);
    assert.ok(err, 'attach fails');
    assert.match(err.message, /replica identity of art does not cover column slug/);
    assert.match(err.hint, /ALTER TABLE art REPLICA IDENTITY FULL/);
    assert.match(err.hint, /USING INDEX/);
    assert.deepEqual((await db.query(`SELECT * FROM cache_invalidation_table WHERE relid = 'art'::regclass`)).rows, []);
    await db.query(`ALTER TABLE art REPLICA IDENTITY FULL; SELECT cache_invalidation_attach('art', 'slug', 'wal', row_data => true)`);
    const reg = await db.query(`SELECT key_column::text, row_data FROM cache_invalidation_table WHERE relid = 'art'::regclass`);
    assert.deepEqual(reg.rows, [{ key_column: 'slug', row_data: true }]);
    // The primary key covers its own columns; a table without one is refused.
    await db.query(`CREATE TABLE nopk (x int); ALTER TABLE art REPLICA IDENTITY DEFAULT; SELECT cache_invalidation_attach('art', 'id', 'wal')`);
    await assert.rejects(db.query(`SELECT cache_invalidation_attach('nopk', 'x', 'wal')`), /replica identity of nopk does not cover column x/);
  });

  test('cache_invalidate writes a transactional logical message for the WAL source', async () => {
    await db.query(`SELECT pg_create_logical_replication_slot('it_lean', 'test_decoding')`);
    await db.query(`BEGIN; SELECT cache_invalidate('page:/about'); ROLLBACK;`);
    await db.query(`SELECT cache_invalidate('page:/home')`);
    await db.query(`SELECT cache_invalidate('page:/after')`);
    // Decoding stops at the WAL flushed so far (the harness runs with synchronous_commit off).
    const messages = await waitUntil(async () => {
      const r = await db.query(`SELECT data FROM pg_logical_slot_peek_changes('it_lean', NULL, NULL) WHERE data LIKE 'message:%'`);
      return r.rows.length >= 2 && r.rows.map((x) => x.data);
    }, 10000, { message: 'the logical messages decoded' });
    assert.deepEqual(messages, [
      'message: transactional: 1 prefix: cache_invalidation, sz: 10 content:page:/home',
      'message: transactional: 1 prefix: cache_invalidation, sz: 11 content:page:/after',
    ], 'the rolled-back one is not there');
  });
});
