// The WAL source (BRIDGE_SOURCE=wal): a logical replication slot read with pgoutput, no
// trigger on the writers' tables. What a user observes: events at a pusher-js client, the
// slot's confirmed position, the bridge's /metrics and /readyz, and what the writers pay.
// The contract both sources share is the rest of the suite's, run under IT_SOURCE=wal too;
// this file holds what only the WAL source promises (typed row data, what pgoutput leaves out,
// the slot as the cursor). It runs under IT_SOURCE=wal (ctest integration-wal).
//
// Run: IT_SOURCE=wal node --test --test-concurrency=1 tests/integration/wal.test.mjs

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import {
  WARN_OR_ERROR, freePort, http, isInvalidation, isLiveInvalidation, sleep, startStack, waitUntil, walOnly,
} from './harness.mjs';

const metric = async (opsUrl, name) =>
  Number((await http(`${opsUrl}/metrics`)).text.match(new RegExp(`^cache_bridge_${name} (\\S+)$`, 'm'))?.[1]);

/** A proxy in front of Soketi that can refuse every connection (cut), the subscriber staying on Soketi. */
async function soketiProxy(t, soketiPort) {
  const sockets = new Set();
  const proxy = {
    cut: false,
    setCut(on) {
      proxy.cut = on;
      if (on) for (const s of sockets) s.destroy();
    },
  };
  const server = net.createServer((client) => {
    if (proxy.cut) return client.destroy();
    const upstream = net.connect(soketiPort, '127.0.0.1');
    for (const s of [client, upstream]) { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); }
    client.pipe(upstream).pipe(client);
  });
  proxy.port = await freePort();
  await new Promise((resolve) => server.listen(proxy.port, '127.0.0.1', resolve));
  t.after(() => { for (const s of sockets) s.destroy(); server.close(); });
  return proxy;
}

describe('wal source: changes read from the write-ahead log reach pusher-js clients', walOnly('reads a replication slot'), () => {
  let stack;
  let db;

  before(async () => {
    stack = await startStack({ source: 'wal' });
    db = stack.pg;
    await db.query(`
      CREATE TABLE posts (id int PRIMARY KEY, title text);
      CREATE TABLE typed (id int PRIMARY KEY, n int, t text, b bool, f float8, num numeric, j jsonb, big text);
      ALTER TABLE typed ALTER COLUMN big SET STORAGE EXTERNAL;  -- out of line, uncompressed, above 2 KB
      CREATE TABLE rd (id int PRIMARY KEY, v text);
      CREATE TABLE rdfull (id int PRIMARY KEY, v text);
      ALTER TABLE rdfull REPLICA IDENTITY FULL;
      CREATE TABLE kc (id int PRIMARY KEY, title text);`);
    await db.attach('posts', 'id');
    await db.attach('typed', 'id', { rowData: true });
    await db.attach('rd', 'id', { rowData: true });
    await db.attach('rdfull', 'id', { rowData: true });
    await db.attach('kc', 'id');
  });
  after(async () => {
    await stack?.stop();
  });

  async function subscribe(t, channel = 'invalidations') {
    const sub = await stack.subscribe(channel);
    t.after(() => sub.disconnect());
    return sub;
  }

  test('insert, update and delete arrive with cacheKey, action, id and a stamp after the commit', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    for (const [sql, action] of [[`INSERT INTO posts VALUES (1, 'a')`, 'insert'],
      [`UPDATE posts SET title = 'b' WHERE id = 1`, 'update'], [`DELETE FROM posts WHERE id = 1`, 'delete']]) {
      const before = Date.now();
      await db.query(sql);
      const e = await sub.waitFor((x) => isLiveInvalidation('posts:1')(x) && x.data.action === action, 10000);
      assert.equal(e.data.table, 'posts');
      assert.equal(e.data.id, 1);
      assert.equal(e.data.data, undefined, 'no row data without row_data');
      assert.ok(e.data.invalidatedAt >= before, `invalidatedAt ${e.data.invalidatedAt} >= ${before}`);
    }
  });

  test('row data is typed by the column types: numbers, booleans and JSON as themselves, text (even digits) as strings, NULL as null', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`INSERT INTO typed VALUES (1, 42, '123', true, 1.5, 12.50, '{"a": [1, "x"]}', NULL)`);
    const e = await sub.waitFor(isLiveInvalidation('typed:1'), 10000);
    assert.equal(e.data.id, 1);
    assert.deepEqual(e.data.data, { id: 1, n: 42, t: '123', b: true, f: 1.5, num: 12.5, j: { a: [1, 'x'] }, big: null });
  });

  test('an UPDATE that leaves a TOASTed column unchanged leaves it out of data', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    // 12,800 bytes stored out of line: the INSERT's row is over 8000 bytes (data_omitted).
    await db.query(`INSERT INTO typed (id, n, big) SELECT 2, 1, string_agg(md5(g::text), '') FROM generate_series(1, 400) g`);
    const ins = await sub.waitFor(isLiveInvalidation('typed:2'), 10000);
    assert.equal(ins.data.dataOmitted, true, JSON.stringify(ins.data));
    await db.query(`UPDATE typed SET n = 2 WHERE id = 2`);
    const upd = await sub.waitFor((x) => isLiveInvalidation('typed:2')(x) && x.data.action === 'update', 10000);
    assert.equal(upd.data.data?.n, 2, JSON.stringify(upd.data));
    assert.ok(!('big' in upd.data.data), `the unchanged TOASTed column is left out: ${JSON.stringify(upd.data.data)}`);
    assert.equal(upd.data.data.t, null, 'an untouched column that is not TOASTed is there');
  });

  test('a DELETE carries only the replica identity in data, the whole old row with REPLICA IDENTITY FULL', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`INSERT INTO rd VALUES (1, 'gone'); INSERT INTO rdfull VALUES (1, 'gone')`);
    await db.query(`DELETE FROM rd WHERE id = 1; DELETE FROM rdfull WHERE id = 1`);
    const d = await sub.waitFor((x) => isLiveInvalidation('rd:1')(x) && x.data.action === 'delete', 10000);
    assert.deepEqual(d.data.data, { id: 1 });
    const f = await sub.waitFor((x) => isLiveInvalidation('rdfull:1')(x) && x.data.action === 'delete', 10000);
    assert.deepEqual(f.data.data, { id: 1, v: 'gone' });
  });

  test('a key change sends the old key (delete) and the new key (update)', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`INSERT INTO kc VALUES (10, 'k')`);
    await sub.waitFor(isLiveInvalidation('kc:10'), 10000);
    await db.query(`UPDATE kc SET id = 11 WHERE id = 10`);
    const old = await sub.waitFor((x) => isLiveInvalidation('kc:10')(x) && x.data.action === 'delete', 10000);
    assert.equal(old.data.id, 10);
    const neu = await sub.waitFor((x) => isLiveInvalidation('kc:11')(x), 10000);
    assert.equal(neu.data.action, 'update');
    assert.equal(neu.data.id, 11);
  });

  test('TRUNCATE sends one event for the table: cacheKey is its name, action truncate', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`INSERT INTO kc VALUES (20, 't'); TRUNCATE kc`);
    const e = await sub.waitFor(isLiveInvalidation('kc'), 10000);
    assert.equal(e.data.action, 'truncate');
    assert.equal(e.data.table, 'kc');
  });

  test("cache_invalidate('k') arrives once committed; rolled back, never", async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`BEGIN; SELECT cache_invalidate('page:/rolled-back'); ROLLBACK;`);
    await db.invalidate('page:/about');
    const e = await sub.waitFor(isLiveInvalidation('page:/about'), 10000);
    assert.equal(typeof e.data.invalidatedAt, 'number');
    // Committed after the rollback, so read after it from the stream: once it is here, the
    // rolled-back one would be too.
    assert.ok(!sub.events.some(isInvalidation('page:/rolled-back')), 'a rolled back invalidation goes nowhere');
  });

  test('a malformed cache_invalidation message is logged and skipped; other prefixes are not ours', async (t) => {
    const bridge = await stack.useBridge();
    const sub = await subscribe(t);
    const mark = bridge.mark();
    await db.query(`SELECT pg_logical_emit_message(true, 'cache_invalidation', '{not json')`);
    await db.query(`SELECT pg_logical_emit_message(true, 'someone_else', 'not:ours')`);
    await db.query(`SELECT pg_logical_emit_message(false, 'cache_invalidation', 'untx:1')`);
    await sub.waitFor(isLiveInvalidation('untx:1'), 10000);
    const complaints = bridge.linesSince(mark).filter((l) => WARN_OR_ERROR.test(l.text));
    assert.equal(complaints.filter((l) => /cache_invalidation message/.test(l.text)).length, 1, bridge.output(mark));
    assert.ok(!complaints.some((l) => /someone_else|not:ours/.test(l.text)), bridge.output(mark));
    assert.ok(!sub.events.some(isInvalidation('not:ours')));
  });

  test('a table attached while the bridge runs: its first change arrives', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`CREATE TABLE late (id int PRIMARY KEY)`);
    await db.attach('late', 'id');
    await db.query(`INSERT INTO late VALUES (1)`);
    await sub.waitFor(isLiveInvalidation('late:1'), 10000);
  });

  test('detached and attached again with row_data while the bridge runs: later changes carry the row', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`CREATE TABLE ra (id int PRIMARY KEY, v text)`);
    await db.attach('ra', 'id');
    await db.query(`INSERT INTO ra VALUES (1, 'a')`);
    const first = await sub.waitFor(isLiveInvalidation('ra:1'), 10000);
    assert.equal(first.data.data, undefined);
    await db.query(`SELECT cache_invalidation_detach('ra')`);
    await db.attach('ra', 'id', { rowData: true });
    await db.query(`INSERT INTO ra VALUES (2, 'b')`);
    const second = await sub.waitFor(isLiveInvalidation('ra:2'), 10000);
    assert.deepEqual(second.data.data, { id: 2, v: 'b' });
  });

  test('attach run again with row_data while the bridge runs: within seconds, changes carry the row', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`CREATE TABLE rb (id int PRIMARY KEY, v text)`);
    await db.attach('rb', 'id');
    await db.query(`INSERT INTO rb VALUES (0, 'a')`);
    assert.equal((await sub.waitFor(isLiveInvalidation('rb:0'), 10000)).data.data, undefined);
    await db.attach('rb', 'id', { rowData: true }); // nothing in the stream says so
    const t0 = Date.now();
    let id = 0;
    await waitUntil(async () => {
      id++;
      await db.query('INSERT INTO rb VALUES ($1, $2)', [id, 'b']);
      const e = await sub.waitFor(isLiveInvalidation(`rb:${id}`), 10000);
      return e.data.data?.v === 'b';
    }, 15000, { intervalMs: 250, message: 'a change with its row' });
    t.diagnostic(`row data from ${Date.now() - t0} ms after the attach`);
  });

  test('a partitioned table: writes through the root and straight to a partition, keyed by the root', async (t) => {
    await stack.useBridge();
    const sub = await subscribe(t);
    await db.query(`
      CREATE TABLE ev (id int NOT NULL, day date NOT NULL, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
      CREATE TABLE ev_2020 PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');`);
    await db.attach('ev', 'id');
    await db.query(`INSERT INTO ev VALUES (1, '2020-05-01')`);
    await db.query(`INSERT INTO ev_2020 VALUES (2, '2020-06-01')`);
    for (const key of ['ev:1', 'ev:2']) {
      const e = await sub.waitFor(isLiveInvalidation(key), 10000);
      assert.equal(e.data.table, 'ev');
    }
  });

  test('a changed BRIDGE_CHANNEL routes the stored stamps anew', async () => {
    const snapshot = async (channel) => JSON.parse((await http(`${stack.baseUrl}/snapshot?channel=${channel}`)).text);
    await stack.useBridge({ BRIDGE_CHANNEL: 'cache-{table}', BRIDGE_CURSOR_NAME: 'renamed' });
    await db.query(`INSERT INTO posts VALUES (31, 'r'), (32, 'r')`);
    const stamp = await db.stamp('posts:31', { bridge: 'renamed' });
    const before = await snapshot('cache-posts');
    const r1 = before.invalidations.find((x) => x.cacheKey === 'posts:31');
    assert.equal(r1?.seq, stamp.seq, `the stamp is served: ${JSON.stringify(before)}`);

    const moved = await stack.useBridge({ BRIDGE_CHANNEL: 'moved-{table}', BRIDGE_CURSOR_NAME: 'renamed' });
    await moved.waitForLine(/stamps: \d+ key\(s\) routed by the new BRIDGE_CHANNEL/, 5000);
    const after = await snapshot('moved-posts');
    assert.deepEqual(after.invalidations.find((x) => x.cacheKey === 'posts:31'), r1, 'same stamp, new channel');
    assert.deepEqual((await snapshot('cache-posts')).invalidations, [], 'nothing left on the old channel');
  });

  test('/readyz is 503 while the replication stream is down (walsender terminated); the bridge reconnects by itself', async (t) => {
    const bridge = await stack.useBridge();
    const sub = await subscribe(t);
    const reconnects0 = await metric(bridge.opsUrl, 'pg_reconnects_total');
    const walsender = async () => (await db.query(
      `SELECT pid FROM pg_stat_activity WHERE application_name = 'cache-bridge' AND backend_type = 'walsender'`)).rows[0]?.pid;
    const old = await waitUntil(walsender, 5000, { message: 'the bridge\'s walsender' });
    const reasons = [];
    const watching = (async () => {
      // The reconnect waits at least 500 ms: polled faster than that.
      for (const until = Date.now() + 5000; Date.now() < until && reasons.length === 0;) {
        const r = await http(`${bridge.opsUrl}/readyz`).catch(() => undefined);
        if (r?.status === 503) reasons.push(r.text.trim());
        await sleep(20);
      }
    })();
    assert.equal((await db.query('SELECT pg_terminate_backend($1) AS ok', [old])).rows[0].ok, true);
    await watching;
    assert.equal(reasons.length, 1, 'readyz answered 503 while the stream was down');
    assert.match(reasons[0], /replication/i, reasons[0]);
    await waitUntil(async () => { const pid = await walsender(); return pid && pid !== old; }, 20000,
      { message: 'a new walsender: the bridge reconnected' });
    await waitUntil(async () => (await http(`${bridge.opsUrl}/readyz`)).status === 200, 10000, { message: 'readyz 200 again' });
    assert.ok((await metric(bridge.opsUrl, 'pg_reconnects_total')) > reconnects0, 'a reconnect is counted');
    await db.query(`INSERT INTO posts VALUES (40, 'after the reconnect')`);
    await sub.waitFor(isLiveInvalidation('posts:40'), 10000);
    assert.ok(bridge.running());
  });

  test('Soketi away: writes commit at full speed, the slot confirms nothing past them, /metrics shows the slot lag; all arrive once Soketi is back', async (t) => {
    const proxy = await soketiProxy(t, stack.soketi.port);
    const slot = stack.slotOf('away');
    const bridge = await stack.useBridge({ SOKETI_PORT: proxy.port, BRIDGE_CURSOR_NAME: 'away' });
    const sub = await subscribe(t);
    await db.query(`CREATE TABLE away (id int PRIMARY KEY)`);
    await db.attach('away', 'id');
    const burst = async (from) => {
      const t0 = Date.now();
      for (let i = 0; i < 100; i++) {
        await db.query('INSERT INTO away SELECT g FROM generate_series($1::int, $2::int) g', [from + i * 300, from + i * 300 + 299]);
      }
      return Date.now() - t0;
    };
    // With Soketi there: 30,000 keys in 100 transactions.
    const baseMs = await burst(0);
    await waitUntil(() => sub.events.filter((e) => e.data?.cacheKey?.startsWith('away:')).length >= 30000, 60000,
      { intervalMs: 200, message: 'the first 30,000 keys delivered' });
    assert.ok(await metric(bridge.opsUrl, 'wal_slot_lag_bytes') >= 0, 'cache_bridge_wal_slot_lag_bytes is exported');

    proxy.setCut(true);
    await db.query('INSERT INTO away VALUES (-1)'); // the first change Soketi cannot take
    const lsnAfterFirst = await db.walLsn();
    const cutMs = await burst(100000);
    const lsnAfterAll = await db.walLsn();
    t.diagnostic(`30,000 keys in 100 commits: ${baseMs} ms with Soketi there, ${cutMs} ms with it away`);
    assert.ok(cutMs <= 3 * baseMs + 3000, `writes slowed down while Soketi was away: ${cutMs} ms against ${baseMs} ms`);
    await waitUntil(async () => (await metric(bridge.opsUrl, 'wal_slot_lag_bytes')) > 0, 15000,
      { intervalMs: 250, message: 'cache_bridge_wal_slot_lag_bytes > 0' });
    await db.slotReplies(slot); // the bridge has told the server whatever it would confirm
    assert.equal(await db.slotConfirmed(slot, lsnAfterFirst), false,
      `the slot confirmed past a change Soketi never took: ${JSON.stringify(await db.slot(slot))} (first change before ${lsnAfterFirst})`);
    assert.equal(sub.events.some(isInvalidation('away:-1')), false, 'Soketi was away meanwhile');

    proxy.setCut(false);
    const seen = new Set();
    await waitUntil(() => {
      for (const e of sub.events) if (e.data?.cacheKey?.startsWith('away:')) seen.add(e.data.cacheKey);
      return seen.size === 60001;
    }, 90000, { intervalMs: 500, message: 'all 60,001 keys delivered' }).catch((err) => {
      throw new Error(`${err.message}: ${seen.size}\n${bridge.output().split('\n').slice(-20).join('\n')}`);
    });
    await waitUntil(() => db.slotConfirmed(slot, lsnAfterAll), 15000, { intervalMs: 250, message: 'the slot confirmed it all' });
  });

  test('SIGKILL mid-burst, restart: nothing lost (the slot re-sends what was not confirmed)', async (t) => {
    const env = { BRIDGE_CURSOR_NAME: 'killed', BRIDGE_REPLAY_MAX_AGE_S: 1 };
    await db.query(`CREATE TABLE hb (id int PRIMARY KEY, body text)`);
    await db.attach('hb', 'id', { rowData: true });
    const slow = await stack.useBridge({ ...env, BRIDGE_QUEUE_MAX_KEYS: 5, SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: 300,
      BRIDGE_COALESCE_MS: 0 });
    const sub = await subscribe(t);
    const keys = Array.from({ length: 3000 }, (_, i) => `hb:${i}`);
    const writing = db.query(`DO $$ BEGIN FOR i IN 0..2999 LOOP INSERT INTO hb VALUES (i, repeat('x', 2000)); COMMIT; END LOOP; END $$`);
    const delivered = () => keys.filter((key) => sub.events.some(isInvalidation(key))).length;
    await waitUntil(() => delivered() >= 1000, 60000, { intervalMs: 100, message: 'a third of the burst delivered' });
    const received = delivered();
    await slow.stop({ signal: 'SIGKILL' });
    await writing;
    t.diagnostic(`before SIGKILL: ${received} of 3,000 delivered`);
    assert.ok(received < 3000, 'the bridge was still behind when killed (else this proves nothing)');

    const deliveredBefore = new Set(keys.filter((key) => sub.events.some(isInvalidation(key))));
    const mark = sub.events.length;
    await stack.useBridge(env);
    await waitUntil(() => keys.every((key) => sub.events.some(isInvalidation(key))), 30000, { intervalMs: 250,
      message: 'all 3,000 keys delivered after the restart' }).catch((err) => {
      const missing = keys.filter((key) => !sub.events.some(isInvalidation(key)));
      throw new Error(`${err.message}: ${missing.length} lost, e.g. ${missing.slice(0, 5).join(', ')}`);
    });
    const resent = new Set(sub.events.slice(mark).filter((e) => e.data?.replay !== true && deliveredBefore.has(e.data?.cacheKey))
      .map((e) => e.data.cacheKey)).size;
    t.diagnostic(`after the SIGKILL and restart: ${resent} of the ${deliveredBefore.size} keys delivered before were sent again`);
  });
});

describe('wal source: big transactions, and a slot the server dropped', walOnly('reads a replication slot'), () => {
  let stack;
  let db;

  before(async () => {
    // A slot may hold back at most 32 MB of WAL (two segments): past that the server drops it.
    stack = await startStack({ source: 'wal', pg: { settings: { max_slot_wal_keep_size: '32MB' } } });
    db = stack.pg;
    await db.query(`CREATE TABLE many (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY, body text)`);
    await db.attach('many', 'id');
    await db.attach('other', 'id');
  });
  after(async () => {
    await stack?.stop();
  });

  test('a transaction of more keys than BRIDGE_QUEUE_MAX_KEYS arrives whole (the stream is read to its commit)', async (t) => {
    const bridge = await stack.useBridge({ BRIDGE_QUEUE_MAX_KEYS: 1000, BRIDGE_CURSOR_NAME: 'small-queue' });
    const sub = await stack.subscribe('invalidations');
    t.after(() => sub.disconnect());
    await db.query('INSERT INTO many SELECT g FROM generate_series(200001, 205000) g');
    const seen = new Set();
    await waitUntil(() => {
      for (const e of sub.events) if (e.data?.cacheKey?.startsWith('many:')) seen.add(e.data.cacheKey);
      return seen.size === 5000;
    }, 30000, { intervalMs: 250, message: 'all 5,000 keys of the transaction' }).catch((err) => {
      throw new Error(`${err.message}: ${seen.size}\n${bridge.output().split('\n').slice(-10).join('\n')}`);
    });
  });

  test('a transaction changing more than 100,000 keys invalidates its table as a whole (cacheKey = table, action resync)', async (t) => {
    const bridge = await stack.useBridge();
    const sub = await stack.subscribe('invalidations');
    t.after(() => sub.disconnect());
    await db.query('INSERT INTO many SELECT g FROM generate_series(1, 100500) g');
    const e = await sub.waitFor(isLiveInvalidation('many'), 10000)
      .catch((err) => { throw new Error(`${err.message.slice(0, 500)}\nbridge log:\n${bridge.output()}`); });
    assert.equal(e.data.action, 'resync');
    assert.equal(e.data.table, 'many');
    // A change committed after the big transaction: once it is here, any key of that
    // transaction would be too.
    await db.invalidate('marker:after-many');
    await sub.waitFor(isLiveInvalidation('marker:after-many'), 10000);
    const keys = sub.events.filter((x) => x.data?.cacheKey?.startsWith('many:')).length;
    assert.equal(keys, 0, 'the table\'s keys are covered: not one of them sent besides');
  });

  test('a slot the server dropped (max_slot_wal_keep_size) is made anew, and every attached table is invalidated as a whole', async (t) => {
    const bridge = await stack.useBridge({ BRIDGE_CURSOR_NAME: 'lost' });
    await sleep(300);
    await bridge.stop();
    // ~80 MB of WAL while the bridge is away, then checkpoints: the slot's WAL is removed.
    for (let i = 0; i < 8; i++) {
      await db.query(`INSERT INTO other SELECT g, string_agg(md5(g::text || x::text), '')
                        FROM generate_series($1::int, $2::int) g, generate_series(1, 300) x GROUP BY g`, [i * 1000, i * 1000 + 999]);
    }
    await db.query('SELECT pg_switch_wal(); CHECKPOINT; SELECT pg_switch_wal(); CHECKPOINT;');
    const slot = await db.slot(stack.slotOf('lost'));
    t.diagnostic(`slot before the restart: ${JSON.stringify(slot)}`);
    assert.equal(slot?.wal_status, 'lost', 'the server dropped the slot\'s WAL (else this proves nothing)');

    const sub = await stack.subscribe('invalidations');
    t.after(() => sub.disconnect());
    const again = await stack.useBridge({ BRIDGE_CURSOR_NAME: 'lost' });
    await again.waitForLine(/replication slot \S+ was invalidated by the server/, 10000);
    for (const table of ['many', 'other']) {
      const e = await sub.waitFor(isLiveInvalidation(table), 10000);
      assert.equal(e.data.action, 'resync');
    }
    assert.equal(await metric(again.opsUrl, 'wal_slots_lost_total'), 1);
    assert.notEqual((await db.slot(stack.slotOf('lost')))?.wal_status, 'lost', 'a new slot');
    await db.query('INSERT INTO many VALUES (0)');
    await sub.waitFor(isLiveInvalidation('many:0'), 10000);
  });
});
