// The WAL source (BRIDGE_SOURCE=wal): a logical replication slot read with pgoutput, no
// trigger on the writers' tables. What a user observes: events at a pusher-js client, the
// slot's confirmed position, the bridge's /metrics and /readyz, and what the writers pay.
//
// Run: node --test --test-concurrency=1 tests/integration/wal.test.mjs

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { isLiveInvalidation, sleep, startStack, waitUntil, http } from './harness.mjs';

const WAL = { BRIDGE_SOURCE: 'wal' };

describe('wal source: changes read from the write-ahead log reach pusher-js clients', () => {
  let stack;
  let db;

  before(async () => {
    stack = await startStack({ pg: { settings: { wal_level: 'logical' } } });
    db = stack.pg;
    await db.query(`
      CREATE TABLE posts (id int PRIMARY KEY, title text);
      SELECT cache_invalidation_attach('posts', 'id', 'wal');`);
  });
  after(async () => {
    await stack?.stop();
  });

  test('insert, update and delete arrive with cacheKey, action, id and a stamp after the commit', async (t) => {
    const bridge = await stack.startBridge(WAL);
    t.after(() => bridge.stop());
    const sub = await stack.subscribe('invalidations');
    t.after(() => sub.disconnect());
    for (const [sql, action] of [[`INSERT INTO posts VALUES (1, 'a')`, 'insert'],
      [`UPDATE posts SET title = 'b' WHERE id = 1`, 'update'], [`DELETE FROM posts WHERE id = 1`, 'delete']]) {
      const before = Date.now();
      await db.query(sql);
      const e = await sub.waitFor((x) => isLiveInvalidation('posts:1')(x) && x.data.action === action, 10000);
      assert.equal(e.data.table, 'posts');
      assert.equal(e.data.id, 1);
      assert.ok(e.data.invalidatedAt >= before, `invalidatedAt ${e.data.invalidatedAt} >= ${before}`);
    }
  });
});
