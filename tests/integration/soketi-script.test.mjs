// scripts/soketi: how it turns the project's .env into Soketi's settings. Runs a copy of the
// script next to a stand-in `soketi` that prints what it was given (no Soketi needed; < 1 s).
// The real Soketi behind the script is exercised by harness.test.mjs and every other test file.
//
// Run: node --test --test-concurrency=1 tests/integration/soketi-script.test.mjs
// (the whole suite: node --test --test-concurrency=1 tests/integration/)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';

import { SOKETI_SCRIPT, cleanEnv, sourceIndependent, spawnCaptured, tempDir, waitUntil, withTimeout } from './harness.mjs';

describe('scripts/soketi', sourceIndependent, () => {
  let dir;
  let script;

  before(() => {
    // tempDir()s are removed when the process exits.
    dir = tempDir('cache-bridge-soketi-script-');
    mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true });
    script = path.join(dir, 'soketi');
    copyFileSync(SOKETI_SCRIPT, script);
    chmodSync(script, 0o755);
    // Stand-in: prints its arguments, working directory and SOKETI_* environment as JSON,
    // or (FAKE_SLEEP=1) records its pid and sleeps, to check that the script exec's it.
    const fake = path.join(dir, 'node_modules', '.bin', 'soketi');
    writeFileSync(fake, `#!/usr/bin/env bash
if [ "\${FAKE_SLEEP:-}" = 1 ]; then echo $$ > "$FAKE_PIDFILE"; exec sleep 30; fi
exec node -e 'const env = {}; for (const [k, v] of Object.entries(process.env)) if (k.startsWith("SOKETI_")) env[k] = v;
console.log(JSON.stringify({ args: process.argv.slice(1), cwd: process.cwd(), env }))' -- "$@"
`);
    chmodSync(fake, 0o755);
  });
  /** Runs the script with an env file body and real env vars; returns {code, stderr, out}. */
  function run(envFileBody, { env = {}, args, cwd = dir } = {}) {
    const file = path.join(dir, 'test.env');
    if (envFileBody !== undefined) writeFileSync(file, envFileBody);
    const r = spawnSync(script, args ?? ['--env-file', file], { cwd, env: cleanEnv(env), encoding: 'utf8', timeout: 10000 });
    let out;
    try {
      out = JSON.parse(r.stdout);
    } catch {
      out = undefined;
    }
    return { code: r.status, stderr: r.stderr, stdout: r.stdout, out };
  }

  test("translates the bridge's names into Soketi's", () => {
    const r = run([
      'SOKETI_APP_ID=id-1',
      'SOKETI_APP_KEY=key-1',
      'SOKETI_APP_SECRET=secret-1',
      'SOKETI_HOST=soketi.internal',
      'SOKETI_PATH_PREFIX=/ws',
      'SOKETI_PORT=6123',
      'SOKETI_DEBUG=1',
      'SOKETI_EVENT_MAX_BATCH_SIZE=7',
      'SOKETI_EVENT_MAX_SIZE_IN_KB=50',
      'SOKETI_WEBHOOK_URL=http://127.0.0.1:3001/soketi/webhook',
      'DATABASE_URL=postgresql://u:pw@127.0.0.1/db',
    ].join('\n'), { args: undefined });
    assert.equal(r.code, 0, r.stderr);
    const { env, args, cwd } = r.out;
    assert.deepEqual(args, ['start']);
    assert.equal(cwd, '/', "Soketi runs where no stray .env is (it loads ./.env itself)");
    assert.equal(env.SOKETI_DEFAULT_APP_ID, 'id-1');
    assert.equal(env.SOKETI_DEFAULT_APP_KEY, 'key-1');
    assert.equal(env.SOKETI_DEFAULT_APP_SECRET, 'secret-1');
    assert.deepEqual(JSON.parse(env.SOKETI_DEFAULT_APP_WEBHOOKS), [
      { url: 'http://127.0.0.1:3001/soketi/webhook', event_types: ['channel_occupied', 'cache_miss'] },
    ]);
    assert.equal(env.SOKETI_PORT, '6123');
    assert.equal(env.SOKETI_DEBUG, '1');
    assert.equal(env.SOKETI_EVENT_MAX_BATCH_SIZE, '7');
    assert.equal(env.SOKETI_EVENT_MAX_SIZE_IN_KB, '50');
    assert.equal(env.SOKETI_METRICS_HOST, '127.0.0.1');
    assert.equal(env.SOKETI_HOST, '127.0.0.1', "the bridge's SOKETI_HOST is not Soketi's bind address");
    assert.equal(env.SOKETI_PATH_PREFIX, undefined, "the bridge's proxy prefix is not Soketi's");
  });

  test('parses comments, export, quotes and inline comments without running anything', () => {
    const marker = path.join(dir, 'pwned');
    const r = run([
      '# a comment',
      '',
      '   # an indented comment',
      'export SOKETI_APP_ID=exported',
      'SOKETI_APP_KEY = "a \\"quoted\\" key # not a comment"  # a comment',
      "SOKETI_APP_SECRET='single # quoted $(touch " + marker + ")'",
      'SOKETI_PORT=6001 # inline comment',
      `SOKETI_DEBUG=$(touch ${marker})`,
      'SOKETI_EVENT_MAX_BATCH_SIZE=9\r',
      'not a key value line',
    ].join('\n'));
    assert.equal(r.code, 0, r.stderr);
    const { env } = r.out;
    assert.equal(env.SOKETI_DEFAULT_APP_ID, 'exported');
    assert.equal(env.SOKETI_DEFAULT_APP_KEY, 'a "quoted" key # not a comment');
    assert.equal(env.SOKETI_DEFAULT_APP_SECRET, `single # quoted $(touch ${marker})`);
    assert.equal(env.SOKETI_PORT, '6001');
    assert.equal(env.SOKETI_DEBUG, `$(touch ${marker})`);
    assert.equal(env.SOKETI_EVENT_MAX_BATCH_SIZE, '9', 'CRLF line endings');
    assert.equal(existsSync(marker), false, 'the file is parsed, never executed');
    assert.match(r.stderr, /not KEY=VALUE/, 'a bad line is reported');
  });

  test('real environment variables override the file; the bridge-named app settings win, as in the bridge', () => {
    const r = run('SOKETI_PORT=6001\nSOKETI_APP_ID=from-file\nSOKETI_APP_KEY=k\n', {
      env: { SOKETI_PORT: '7001', SOKETI_DEFAULT_APP_ID: 'soketi-own', SOKETI_APP_KEY: 'env-key' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.out.env.SOKETI_PORT, '7001');
    assert.equal(r.out.env.SOKETI_DEFAULT_APP_ID, 'from-file');
    assert.equal(r.out.env.SOKETI_DEFAULT_APP_KEY, 'env-key');
    assert.match(r.stderr, /SOKETI_DEFAULT_APP_ID differs from SOKETI_APP_ID/);
  });

  test('SOKETI_WEBHOOK_EVENT_TYPES and URLs are encoded as JSON', () => {
    const r = run('SOKETI_WEBHOOK_URL="http://h:1/p?a=\\"b\\""\nSOKETI_WEBHOOK_EVENT_TYPES= channel_occupied , channel_vacated,\n');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.out.env.SOKETI_DEFAULT_APP_WEBHOOKS), [
      { url: 'http://h:1/p?a="b"', event_types: ['channel_occupied', 'channel_vacated'] },
    ]);
    const none = run('SOKETI_APP_ID=x\n');
    assert.equal(none.out.env.SOKETI_DEFAULT_APP_WEBHOOKS, undefined, 'no URL, no webhooks');
  });

  test('a missing --env-file is an error; a missing default ./.env is not', () => {
    const missing = run(undefined, { args: ['--env-file', path.join(dir, 'nope.env')] });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.env not found/);
    const emptyDir = tempDir('cache-bridge-soketi-cwd-');
    const noDefault = run(undefined, { args: ['--extra-flag'], cwd: emptyDir });
    assert.equal(noDefault.code, 0, noDefault.stderr);
    assert.deepEqual(noDefault.out.args, ['start', '--extra-flag'], 'other arguments go to `soketi start`');
  });

  test("exec's Soketi, so signals reach it directly", async () => {
    const pidFile = path.join(dir, 'fake.pid');
    writeFileSync(path.join(dir, 'empty.env'), '');
    const proc = spawnCaptured(script, ['--env-file', path.join(dir, 'empty.env')], {
      name: 'scripts/soketi', env: cleanEnv({ FAKE_SLEEP: '1', FAKE_PIDFILE: pidFile }),
    });
    try {
      await waitUntil(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim(), 5000, { message: 'stand-in started' });
      assert.equal(Number(readFileSync(pidFile, 'utf8').trim()), proc.pid, 'the script replaced itself with soketi');
      const r = await withTimeout(proc.stop({ signal: 'SIGTERM', killAfterMs: 3000 }), 5000, 'stop');
      assert.equal(r.signal, 'SIGTERM');
    } finally {
      await proc.stop({ signal: 'SIGKILL' });
    }
  });
});
