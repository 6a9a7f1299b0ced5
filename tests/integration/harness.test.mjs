// Self-test of the harness and of sql/cache_invalidation.sql, without the bridge: PostgreSQL
// starts and the triggers emit the expected NOTIFY payloads, scripts/soketi starts Soketi with
// working webhooks, and a pusher-js subscriber receives an event sent with the `pusher` SDK.
// If this file fails, failures in the bridge's tests say nothing about the bridge.
//
// Run: node --test --test-concurrency=1 tests/integration/harness.test.mjs
// (the whole suite: node --test --test-concurrency=1 tests/integration/)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import {
  freePort, metricValue, notifyOnly, signWebhook, SQL_FILE, sourceIndependent, startPostgres, startSoketi, subscribe, waitUntil,
  withTimeout,
} from './harness.mjs';

describe('PostgreSQL and the SQL triggers', notifyOnly('the triggers and the store they write'), () => {
  let db;
  let listener;
  const notes = [];

  before(async () => {
    db = await startPostgres();
    await db.query(`
      CREATE TABLE posts (id int PRIMARY KEY, title text);
      CREATE TABLE users (id int PRIMARY KEY, name text);
      CREATE TABLE big (id int PRIMARY KEY, body text);
      SELECT cache_invalidation_attach('posts', 'id', row_data => true);
      SELECT cache_invalidation_attach('users', 'id', 'text');
      SELECT cache_invalidation_attach('big', 'id', row_data => true);
      CREATE TABLE plain (id int PRIMARY KEY, secret text);
      SELECT cache_invalidation_attach('plain', 'id');`);
    listener = await db.client();
    listener.on('notification', (n) => notes.push({ channel: n.channel, payload: n.payload }));
    await listener.query('LISTEN cache_invalidation');
    await listener.query('LISTEN data_change_notification');
  });
  after(async () => {
    await db?.stop();
  });

  const nextNotes = async (n) => {
    await waitUntil(() => notes.length >= n, 5000, { message: `${n} notifications` });
    return notes.splice(0, notes.length);
  };

  test('JSON style: insert, update, key change and delete notify (no pre-commit timestamp) and write the store', async () => {
    const before = Date.now();
    await db.query(`INSERT INTO posts VALUES (1, 'hello')`);
    let [n] = await nextNotes(1);
    assert.equal(n.channel, 'cache_invalidation');
    let p = JSON.parse(n.payload);
    // A timestamp taken inside the writer's transaction precedes its commit: the bridge stamps
    // at receipt, so the payload carries none.
    assert.deepEqual(p, {
      table: 'posts', action: 'insert', id: 1, cache_key: 'posts:1', data: { id: 1, title: 'hello' },
    });
    const ms = await db.storeMs('posts:1');
    assert.ok(ms >= before - 1000 && ms <= Date.now() + 1000);

    await db.query(`UPDATE posts SET title = 'hi' WHERE id = 1`);
    [n] = await nextNotes(1);
    p = JSON.parse(n.payload);
    assert.equal(p.action, 'update');
    assert.deepEqual(p.data, { id: 1, title: 'hi' });
    assert.ok(await db.storeMs('posts:1') >= ms);

    // Changing the key invalidates both the old key (as a delete) and the new one.
    await db.query(`UPDATE posts SET id = 2 WHERE id = 1`);
    const pair = (await nextNotes(2)).map((x) => JSON.parse(x.payload));
    assert.deepEqual(pair.map((x) => [x.cache_key, x.action]), [['posts:1', 'delete'], ['posts:2', 'update']]);

    await db.query(`DELETE FROM posts WHERE id = 2`);
    [n] = await nextNotes(1);
    p = JSON.parse(n.payload);
    assert.equal(p.action, 'delete');
    assert.equal(p.cache_key, 'posts:2');
    assert.deepEqual(p.data, { id: 2, title: 'hi' });
    const store = await db.query(`SELECT cache_key, table_name FROM cache_invalidated_at ORDER BY cache_key`);
    assert.deepEqual(store.rows, [{ cache_key: 'posts:1', table_name: 'posts' }, { cache_key: 'posts:2', table_name: 'posts' }]);
  });

  test('text style: the payload is the cache key; the store is written', async () => {
    await db.query(`INSERT INTO users VALUES (7, 'ann')`);
    await db.query(`UPDATE users SET name = 'bo' WHERE id = 7`);
    await db.query(`UPDATE users SET id = 8 WHERE id = 7`);
    await db.query(`DELETE FROM users WHERE id = 8`);
    const got = await nextNotes(5);
    assert.deepEqual(got, [
      { channel: 'data_change_notification', payload: 'users:7' },
      { channel: 'data_change_notification', payload: 'users:7' },
      { channel: 'data_change_notification', payload: 'users:7' },
      { channel: 'data_change_notification', payload: 'users:8' },
      { channel: 'data_change_notification', payload: 'users:8' },
    ]);
    assert.ok(await db.storeMs('users:7'));
    assert.ok(await db.storeMs('users:8'));
  });

  test('without row_data (the default) the payload carries the key, never the row', async () => {
    await db.query(`INSERT INTO plain VALUES (1, 'card number')`);
    const [n] = await nextNotes(1);
    // The lean triggers: one NOTIFY per statement, the keys in `ids` (the bridge keys each <table>:<id>).
    assert.deepEqual(JSON.parse(n.payload), { table: 'plain', action: 'insert', ids: [1] });
    await assert.rejects(db.query(`SELECT cache_invalidation_attach('plain', 'id', 'text', row_data => true)`),
      /row_data needs the json style/);
  });

  test('a row over 8000 bytes commits and notifies without data', async () => {
    await db.query(`INSERT INTO big VALUES (1, repeat('x', 10000))`);
    const [n] = await nextNotes(1);
    const p = JSON.parse(n.payload);
    assert.equal(p.cache_key, 'big:1');
    assert.equal(p.data_omitted, true);
    assert.equal(p.data, undefined);
  });

  test('timestamps per key only move forward; writer_xid is the writing transaction', async () => {
    await db.query(`SELECT cache_invalidation_record('k', 't')`);
    const first = await db.storeMs('k');
    const r = await db.query(`
      SELECT cache_invalidation_record('k', 't') AS ms, pg_current_xact_id()::text AS xid`);
    assert.ok(r.rows[0].ms >= first);
    const row = await db.query(`SELECT writer_xid::text AS xid FROM cache_invalidated_at WHERE cache_key = 'k'`);
    assert.equal(row.rows[0].xid, r.rows[0].xid);
  });
});

describe('upgrading from the per-key store table', notifyOnly('the store the triggers write'), () => {
  let db;
  before(async () => { db = await startPostgres({ installSql: false }); });
  after(async () => { await db?.stop(); });

  const install = () => execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', SQL_FILE, db.url],
    { stdio: 'pipe' });

  test('rerunning the SQL moves the rows into the log, keeps their times and readers; a rerun changes nothing', async () => {
    await db.query(`
      CREATE TABLE cache_invalidated_at (cache_key text PRIMARY KEY, table_name text NOT NULL,
                                         invalidated_at timestamptz NOT NULL, writer_xid xid8 NOT NULL);
      INSERT INTO cache_invalidated_at VALUES ('posts:1', 'posts', '2026-01-02 03:04:05.678+00', '100'),
                                              ('page:/home', 'page', '2026-01-03 00:00:00+00', '101');
      DROP ROLE IF EXISTS it_old_reader; CREATE ROLE it_old_reader;
      GRANT SELECT ON cache_invalidated_at TO it_old_reader;`);
    install();
    install();
    const rows = (await db.query(`SELECT cache_key, table_name, extract(epoch FROM invalidated_at)::text AS at,
                                         writer_xid::text AS xid FROM cache_invalidated_at ORDER BY 1`)).rows;
    assert.deepEqual(rows, [
      { cache_key: 'page:/home', table_name: 'page', at: '1767398400.000000', xid: '101' },
      { cache_key: 'posts:1', table_name: 'posts', at: '1767323045.678000', xid: '100' },
    ]);
    assert.equal((await db.query(`SELECT count(*)::int AS n FROM cache_invalidation_log`)).rows[0].n, 2);
    const rights = (await db.query(`SELECT has_table_privilege('it_old_reader', 'cache_invalidated_at', 'SELECT') AS v,
                                           has_table_privilege('it_old_reader', 'cache_invalidation_log', 'SELECT') AS l`)).rows[0];
    assert.deepEqual(rights, { v: true, l: true });
    assert.equal((await db.query(`SELECT relkind FROM pg_class WHERE relname = 'cache_invalidated_at'`)).rows[0].relkind, 'v');
  });
});

describe('pruning the store', notifyOnly('the store the triggers write'), () => {
  let db;
  before(async () => { db = await startPostgres(); });
  after(async () => { await db?.stop(); });

  test('cache_invalidation_prune forgets only old keys that every cursor has passed', async () => {
    await db.query(`SELECT cache_invalidation_record('old:1', 't'), cache_invalidation_record('old:2', 't')`);
    await db.query(`UPDATE cache_invalidation_log SET logged_at = now() - interval '2 days'`);
    // No bridge has a cursor yet: nothing is known to be published, nothing goes.
    assert.equal(Number((await db.query(`SELECT cache_invalidation_prune('1 day') AS n`)).rows[0].n), 0);
    await db.query(`INSERT INTO cache_bridge_cursor (name, resume_xid) VALUES ('a', pg_snapshot_xmin(pg_current_snapshot()))`);
    await db.query(`SELECT cache_invalidation_record('new:1', 't')`);
    // A second bridge that is behind holds everything back.
    await db.query(`INSERT INTO cache_bridge_cursor (name, resume_xid) VALUES ('b', '1')`);
    assert.equal(Number((await db.query(`SELECT cache_invalidation_prune('1 day') AS n`)).rows[0].n), 0);
    await db.query(`DELETE FROM cache_bridge_cursor WHERE name = 'b'`);
    assert.equal(Number((await db.query(`SELECT cache_invalidation_prune('1 day') AS n`)).rows[0].n), 2);
    const left = (await db.query(`SELECT cache_key FROM cache_invalidated_at ORDER BY 1`)).rows.map((r) => r.cache_key);
    assert.deepEqual(left, ['new:1']);
  });
});

describe('Soketi through scripts/soketi', sourceIndependent, () => {
  let soketi;
  let webhookServer;
  const webhooks = [];

  before(async () => {
    const hookPort = await freePort();
    webhookServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        webhooks.push({ path: req.url, headers: req.headers, body });
        res.end('{}');
      });
    });
    await new Promise((resolve) => webhookServer.listen(hookPort, '127.0.0.1', resolve));
    soketi = await startSoketi({ webhookUrl: `http://127.0.0.1:${hookPort}/soketi/webhook`, secret: 'self-test-secret' });
  });
  after(async () => {
    await soketi?.stop();
    await new Promise((resolve) => (webhookServer ? webhookServer.close(resolve) : resolve()));
  });

  test('a pusher-js subscriber receives an event triggered through the HTTP API', async () => {
    const sub = await subscribe({ port: soketi.port, key: soketi.key, channel: 'invalidations' });
    try {
      await soketi.pusher.trigger('invalidations', 'cache-invalidate', { cacheKey: 'posts:1', invalidatedAt: 123 });
      const e = await sub.waitFor((x) => x.event === 'cache-invalidate', 5000);
      assert.deepEqual(e.data, { cacheKey: 'posts:1', invalidatedAt: 123 });
    } finally {
      await sub.disconnect();
    }
  });

  test('channel_occupied and cache_miss webhooks arrive signed with the app secret', async () => {
    const sub = await subscribe({ port: soketi.port, key: soketi.key, channel: 'cache-selftest' });
    try {
      await waitUntil(() => webhooks.some((w) => w.body.includes('cache_miss')), 5000, { message: 'cache_miss webhook' });
      await waitUntil(() => webhooks.some((w) => w.body.includes('"channel_occupied"') && w.body.includes('cache-selftest')),
        5000, { message: 'channel_occupied webhook' });
      for (const w of webhooks) {
        assert.equal(w.path, '/soketi/webhook');
        assert.equal(w.headers['x-pusher-key'], soketi.key);
        assert.equal(w.headers['x-pusher-signature'], signWebhook(w.body, 'self-test-secret'));
        const body = JSON.parse(w.body);
        assert.equal(typeof body.time_ms, 'number');
        assert.ok(Array.isArray(body.events));
      }
      assert.ok(sub.internal.some((e) => e.event === 'pusher:cache_miss'));

      // A cache channel remembers its last event for later subscribers.
      await soketi.pusher.trigger('cache-selftest', 'cache-invalidate', { cacheKey: 'x', invalidatedAt: 1 });
      await sub.waitFor((e) => e.data?.cacheKey === 'x', 5000);
      const late = await subscribe({ port: soketi.port, key: soketi.key, channel: 'cache-selftest' });
      try {
        const e = await late.waitFor((x) => x.data?.cacheKey === 'x', 5000);
        assert.equal(e.event, 'cache-invalidate');
      } finally {
        await late.disconnect();
      }
    } finally {
      await sub.disconnect();
    }
    assert.ok((await soketi.occupiedChannels()).length === 0 ||
      await waitUntil(async () => (await soketi.occupiedChannels()).length === 0, 3000));
  });

  // Soketi 1.6.1 on the pinned uWebSockets.js answers rejected API requests with HTTP 200 and
  // {"error": ..., "code": 401|413|...} in the body (headers are written before the status, so
  // uWS keeps 200). A client that only checks the HTTP status misses every such error.
  test('a request signed with the wrong secret is rejected (code 401 in the body)', async () => {
    const Pusher = createRequire(new URL('../../scripts/package.json', import.meta.url))('pusher');
    const wrong = new Pusher({ appId: soketi.appId, key: soketi.key, secret: 'nope', host: '127.0.0.1', port: String(soketi.port), useTLS: false });
    const res = await withTimeout(wrong.trigger('x', 'y', {}), 5000, 'trigger');
    const body = JSON.parse(await res.text());
    assert.equal(body.code, 401, JSON.stringify(body));
    assert.match(body.error, /secret/i);
    assert.equal(res.status, 200, 'Soketi now sends a real 401 status: the quirk note above is obsolete');
  });

  test('stop() returns once the process has exited', async () => {
    const s = await startSoketi({});
    const t0 = Date.now();
    const r = await s.stop();
    assert.equal(s.proc.running(), false);
    assert.ok(r.code === 0 || r.signal === 'SIGTERM' || r.code === null, JSON.stringify(r));
    assert.ok(Date.now() - t0 < 15000);
  });
});

test('metricValue: the sum over labels, one labelled sample when asked for it, undefined when absent', sourceIndependent, () => {
  const text = ['# HELP cache_bridge_x A counter.', '# TYPE cache_bridge_x counter',
    'cache_bridge_x{kind="a"} 2', 'cache_bridge_x{kind="b"} 3', 'cache_bridge_xy 7', 'cache_bridge_role{role="active"} 1'].join('\n');
  assert.equal(metricValue(text, 'cache_bridge_x'), 5);
  assert.equal(metricValue(text, 'cache_bridge_x{kind="b"}'), 3);
  assert.equal(metricValue(text, 'cache_bridge_xy'), 7);
  assert.equal(metricValue(text, 'cache_bridge_role{role="standby"}'), undefined);
  assert.equal(metricValue(text, 'cache_bridge_missing'), undefined);
});
