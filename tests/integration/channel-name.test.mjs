// The clients' channel-name twin (deploy/clients/channel-name.mjs) gives the same names as
// bridge::expand_channel(): the vectors below are copied from tests/unit/channel_name_test.cc.
// Pure: starts no servers.
//
// Run: node --test tests/integration/channel-name.test.mjs

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';

import { channelName } from '../../deploy/clients/channel-name.mjs';

const repeat = (text, times) => text.repeat(times);

// SHARED VECTORS: keep identical to kVectors in tests/unit/channel_name_test.cc.
const kVectors = [
  ['invalidations', 'posts', 'posts:1', 'invalidations'],
  ['cache-{key}', 'posts', 'posts:1', 'cache-posts=3A1'],
  ['cache-{key}', 'posts', 'posts-1', 'cache-posts-1'],
  ['cache-{key}', 'posts', 'café', 'cache-caf=C3=A9'],
  ['cache-{key}', 'posts', 'a=b', 'cache-a=3Db'],
  ['cache-{key}', 'posts', '\u{1F600}', 'cache-=F0=9F=98=80'],
  ['cache-{key}', 'posts', 'a b/c', 'cache-a=20b=2Fc'],
  ['cache-{key}', 'posts', '', 'cache-'],
  ['cache-{table}-{key}', 'public.posts', 'posts:1', 'cache-public.posts-posts=3A1'],
  ['{key}.{key}', 't', 'k:1', 'k=3A1.k=3A1'],
  ['x-{unknown}', 't', 'k', 'x-{unknown}'],
  ['{key}', '', repeat('a', 200), repeat('a', 200)],
  ['{key}', '', repeat('a', 201), repeat('a', 182) + '=ha92efd82109373e5'],
  ['cache-{key}', 'posts', repeat('x', 299) + 'a',
    'cache-' + repeat('x', 176) + '=ha75d853983ba97e1'],
  ['cache-{key}', 'posts', repeat('x', 299) + 'b',
    'cache-' + repeat('x', 176) + '=h9e1b9340881491f4'],
  ['cache-{key}', 'posts', repeat('é', 100), 'cache-' + repeat('=C3=A9', 29) + '=h798bc8a0a3acef59'],
];

describe('channelName (JavaScript twin of bridge::expand_channel)', () => {
  test('shared vectors give the same names as the C++ rule', async () => {
    for (const [template, table, cacheKey, expected] of kVectors) {
      assert.equal(await channelName(template, table, cacheKey), expected,
        `channelName(${JSON.stringify(template)}, ${JSON.stringify(table)}, ` +
        `${JSON.stringify(cacheKey.slice(0, 40))}...)`);
    }
  });

  test('the hash covers the full expanded name (checked with node:crypto)', async () => {
    for (const key of [repeat('x', 299) + 'a', repeat('é', 100)]) {
      const full = Buffer.from('cache-' + [...Buffer.from(key)].map((b) => (
        /[A-Za-z0-9_\-@,.;]/.test(String.fromCharCode(b)) ? String.fromCharCode(b)
          : `=${b.toString(16).toUpperCase().padStart(2, '0')}`)).join(''));
      const hex = createHash('sha256').update(full).digest('hex').slice(0, 16);
      const name = await channelName('cache-{key}', 'posts', key);
      assert.ok(name.endsWith(`=h${hex}`), name);
      assert.ok(name.length <= 200);
    }
  });

  test('a long multi-byte key is never cut inside an escape', async () => {
    for (const unit of ['é', '\u{1F600}', '\u20AC', 'a\u00E9', 'ab\u00E9', 'a:']) {
      for (let prefix = 0; prefix < 4; prefix++) {
        const name = await channelName(`${'c'.repeat(prefix)}{key}`, 't', unit.repeat(120));
        const marker = name.lastIndexOf('=h');
        assert.ok(name.length <= 200, name);
        assert.equal(marker + 18, name.length, name);
        assert.match(name.slice(marker + 2), /^[0-9a-f]{16}$/);
        assert.doesNotMatch(name.slice(0, marker), /=.?$/, name);
      }
    }
  });
});
