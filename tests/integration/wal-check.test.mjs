// `cache-bridge --check` under BRIDGE_SOURCE=wal: what reading a replication slot needs, said
// before the first start (wal_level, the role's rights, the publication, the slot).
//
// Run: node --test --test-concurrency=1 tests/integration/wal-check.test.mjs

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { runBridge, startStack, walOnly } from './harness.mjs';

describe('wal source: --check', walOnly('checks what the WAL source needs'), () => {
  let logical;
  let replica;

  before(async () => {
    [logical, replica] = await Promise.all([
      startStack({ pg: { settings: { wal_level: 'logical' } } }),
      startStack({ pg: { settings: { wal_level: 'replica' } } }),
    ]);
    await logical.pg.query(`
      CREATE TABLE posts (id int PRIMARY KEY, title text);
      CREATE ROLE reader LOGIN;
      GRANT SELECT, INSERT, UPDATE ON cache_bridge_stamp, cache_bridge_cursor TO reader;
      GRANT SELECT, DELETE ON cache_invalidation_log TO reader;
      GRANT SELECT ON cache_invalidation_table TO reader;`);
  });
  after(async () => {
    await Promise.allSettled([logical?.stop(), replica?.stop()]);
  });

  const check = (stack, env = {}) =>
    runBridge({ env: stack.bridgeEnv({ BRIDGE_SOURCE: 'wal', ...env }), args: ['--check'] });

  test('names each missing piece: wal_level, the publication, the role\'s REPLICATION attribute', async () => {
    const wrongLevel = await check(replica);
    assert.equal(wrongLevel.code, 1, wrongLevel.output);
    assert.match(wrongLevel.text, /FAIL\s+wal: wal_level is replica: set wal_level = logical and restart PostgreSQL/);

    const noPublication = await check(logical);
    assert.equal(noPublication.code, 1, noPublication.output);
    assert.match(noPublication.text, /ok\s+wal: wal_level is logical/);
    assert.match(noPublication.text, /FAIL\s+wal: publication cache_invalidation does not exist/);

    await logical.pg.query(`SELECT cache_invalidation_attach('posts', 'id', 'wal')`);
    const reader = new URL(logical.pg.url);
    reader.username = 'reader';
    const noRights = await check(logical, { DATABASE_URL: reader.toString() });
    assert.equal(noRights.code, 1, noRights.output);
    assert.match(noRights.text, /FAIL\s+wal: this role lacks the REPLICATION attribute/);
    assert.doesNotMatch(noRights.text, /listen:/, 'no LISTEN check under the wal source');
  });

  test('passes once everything is in place, and says the first start creates the slot', async () => {
    await logical.pg.query(`SELECT cache_invalidation_attach('posts', 'id', 'wal')`);
    const r = await check(logical, { BRIDGE_SLOT: 'check_slot' });
    assert.equal(r.code, 0, r.output);
    assert.match(r.text, /ok\s+wal: publication cache_invalidation has 1 table\(s\)/);
    assert.match(r.text, /ok\s+wal: replication slot check_slot does not exist yet: the first start creates it/);
    assert.match(r.text, /ok\s+wal: replication connection works/);
    assert.match(r.text, /warn\s+wal: max_slot_wal_keep_size is unlimited/);
  });
});
