// Integration-test harness: starts real PostgreSQL, real Soketi and the real bridge binary,
// and subscribes real pusher-js clients. Every helper is bounded in time and cleans up after
// itself (kill, then wait for the process to exit); a process-exit hook kills leftovers.
//
// Run the suite (serially: it starts servers and the machine is small):
//   scripts/install-deps                       # Soketi, pusher-js, pg in scripts/node_modules
//   cmake -S . -B build && cmake --build build -j2
//   node --test --test-concurrency=1 tests/integration/
// The bridge binary defaults to build/bridge/cache-bridge; override with CACHE_BRIDGE_BIN.
// PostgreSQL binaries default to /usr/lib/postgresql/15/bin; override with PG_BIN_DIR.
// Set HARNESS_VERBOSE=1 to echo every child process's output to stderr as it happens.
//
// IT_SOURCE picks the bridge's change source for the whole run: `notify` (default: triggers
// NOTIFY, the bridge LISTENs) or `wal` (PostgreSQL starts with wal_level=logical, the bridge
// reads a replication slot, BRIDGE_SOURCE=wal). Tests attach tables with db.attach() and write
// by-hand invalidations with db.invalidate(), which pick the source's way; a test about one
// source's mechanics says so with notifyOnly(reason) / walOnly(reason), a visible skip.

import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const requireScripts = createRequire(path.join(repoRoot, 'scripts', 'package.json'));
const pg = requireScripts('pg');
const PusherClient = requireScripts('pusher-js');
const PusherServer = requireScripts('pusher');

export const PG_BIN_DIR = process.env.PG_BIN_DIR || '/usr/lib/postgresql/15/bin';
export const BRIDGE_BIN = process.env.CACHE_BRIDGE_BIN || path.join(repoRoot, 'build', 'bridge', 'cache-bridge');
export const SOKETI_SCRIPT = path.join(repoRoot, 'scripts', 'soketi');
export const SQL_FILE = path.join(repoRoot, 'sql', 'cache_invalidation.sql');
const VERBOSE = process.env.HARNESS_VERBOSE === '1';

/** The change source under test: 'notify' or 'wal' (IT_SOURCE). */
export const source = process.env.IT_SOURCE || 'notify';
if (!['notify', 'wal'].includes(source)) throw new Error(`IT_SOURCE must be notify or wal, not ${source}`);

/** Test options that skip a test (or describe) unless the run is under the notify source. */
export const notifyOnly = (reason) => ({ skip: source !== 'notify' && `notify source only: ${reason}` });
/** Test options that skip a test (or describe) unless the run is under the WAL source. */
export const walOnly = (reason) => ({ skip: source !== 'wal' && `wal source only: ${reason}` });

/** Test options for a test (or describe) that involves no change source: it runs once, under notify. */
export const sourceIndependent = notifyOnly('involves no change source (runs once, under notify)');

/** The replication slot of the bridge named `cursorName` (BRIDGE_CURSOR_NAME) under the WAL source. */
export function slotOf(cursorName = 'default') {
  return cursorName === 'default' ? 'cache_bridge' : `cb_${cursorName.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

const quoteIdent = (name) => `"${String(name).replace(/"/g, '""')}"`;

// pg returns bigint (int8) as a string by default; the store's timestamps fit in a double.
pg.types.setTypeParser(20, (v) => Number(v));

// ---------------------------------------------------------------------------------------
// Small utilities

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const portsHandedOut = new Set();

// Below Linux's ephemeral range (32768-60999): a port picked there can be taken by an outgoing
// connection (the bridge opens one per request to Soketi) before the server binds it.
const PORT_RANGE = { low: 20000, high: 32000 };

/** A currently free TCP port on 127.0.0.1 (not handed out before by this process). */
export async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = PORT_RANGE.low + Math.floor(Math.random() * (PORT_RANGE.high - PORT_RANGE.low));
    const port = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', () => resolve(null));
      srv.listen(candidate, '127.0.0.1', () => {
        srv.close(() => resolve(candidate));
      });
    });
    if (port !== null && !portsHandedOut.has(port)) {
      portsHandedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no new free port after 50 attempts');
}

/**
 * Polls fn (sync or async) until it returns a truthy value, which is returned.
 * Exceptions from fn count as "not yet". Throws after timeoutMs with `message` and the last error.
 */
export async function waitUntil(fn, timeoutMs = 10000, { intervalMs = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError ? ` (last error: ${lastError.message ?? lastError})` : '';
      throw new Error(`waitUntil: ${message} not met within ${timeoutMs} ms${why}`);
    }
    await sleep(Math.min(intervalMs, Math.max(1, deadline - Date.now())));
  }
}

/** Races a promise against a timer; rejects with `message` on timeout. */
export function withTimeout(promise, timeoutMs, message = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * GET/POST with a bounded time. Returns {status, headers, text}. Network errors throw.
 * With `ca` (PEM), an https URL is fetched trusting that CA (e.g. a test's self-signed cert):
 * Node's fetch (undici) takes no CA per request, so that goes through node:https instead, whose
 * headers come back as a plain object, not a Headers.
 */
export async function http(url, { method = 'GET', headers = {}, body, timeoutMs = 5000, ca } = {}) {
  if (ca) return httpsWithCa(url, { method, headers, body, timeoutMs, ca });
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function httpsWithCa(url, { method, headers, body, timeoutMs, ca }) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A metric's value in a Prometheus exposition text: the sum of its samples (any labels), or,
 * with `name` written with its labels (`cache_bridge_role{role="active"}`), that sample's.
 * undefined when absent.
 */
export function metricValue(text, name) {
  let sum;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m && (name.includes('{') ? m[1] + (m[2] ?? '') : m[1]) === name) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** Hex HMAC-SHA256 of a raw webhook body: the X-Pusher-Signature Soketi sends. */
export function signWebhook(rawBody, secret) {
  return createHmac('sha256', secret).update(rawBody).digest('hex');
}

/** The HTTP sink's X-Cache-Bridge-Signature of `body` sent at `timestamp` (unix seconds): v1=<hex HMAC-SHA256 of "<ts>.<body>">. */
export function httpSinkSignature(secret, timestamp, body) {
  return 'v1=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** Makes a temp directory that the process-exit hook removes if the test does not. */
export function tempDir(prefix = 'cache-bridge-it-') {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  liveTempDirs.add(dir);
  return dir;
}

function removeTempDir(dir) {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
  liveTempDirs.delete(dir);
}

/** Writes a .env file from an object (values double-quoted and escaped). */
export function writeEnvFile(file, env) {
  const lines = Object.entries(env)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

// Configuration keys of the bridge and Soketi: stripped from the inherited environment so that a
// developer's shell cannot change what a test configures.
const CONFIG_KEY = /^(SOKETI_|BRIDGE_|DATABASE_URL$|PG[A-Z]+$|CACHE_BRIDGE_BIN$)/;
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!CONFIG_KEY.test(k)) env[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null) env[k] = String(v);
  return env;
}

// ---------------------------------------------------------------------------------------
// Child processes

const liveProcesses = new Set();
const liveTempDirs = new Set();

// A test runner that times a file out (or Ctrl-C) signals this process: 'exit' hooks do not run
// on a signal's default action, so turn the signal into an exit.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => process.exit(128 + os.constants.signals[signal]));
}

process.on('exit', () => {
  // Last resort when a test failed before its cleanup ran: nothing may outlive the run.
  for (const p of liveProcesses) {
    try {
      process.kill(p.pid, p.emergencySignal);
    } catch {
      /* already gone */
    }
  }
  for (const dir of liveTempDirs) {
    try {
      // Retries: a just-signalled postgres may still be writing into its data directory.
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch {
      /* best effort */
    }
  }
});

/**
 * Spawns a process and captures its output line by line.
 * Returns {pid, lines, exited, waitForLine, mark, output, stop, running}.
 *   lines: [{stream: 'stdout'|'stderr', text, time}] in arrival order.
 *   exited: resolves {code, signal} when the process has exited (never rejects).
 *   stop({signal, killAfterMs}): sends signal (default SIGTERM), SIGKILL after killAfterMs,
 *     resolves {code, signal} once the process has exited.
 */
export function spawnCaptured(command, args, { name = path.basename(command), env, cwd, uid, gid,
  emergencySignal = 'SIGKILL', maxLines = 20000 } = {}) {
  const child = spawn(command, args, { env, cwd, uid, gid, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let dropped = 0;
  const waiters = new Set();
  const record = (stream) => {
    let partial = '';
    child[stream].setEncoding('utf8');
    child[stream].on('data', (chunk) => {
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        push(stream, partial.slice(0, nl).replace(/\r$/, ''));
        partial = partial.slice(nl + 1);
      }
    });
    child[stream].on('end', () => {
      if (partial) push(stream, partial);
      partial = '';
    });
  };
  const push = (stream, text) => {
    const line = { stream, text, time: Date.now(), index: dropped + lines.length };
    lines.push(line);
    if (lines.length > maxLines) {
      lines.shift();
      dropped++;
    }
    if (VERBOSE) process.stderr.write(`[${name} ${stream}] ${text}\n`);
    for (const w of waiters) w(line);
  };
  record('stdout');
  record('stderr');

  const handle = {
    name,
    pid: child.pid,
    child,
    lines,
    exitCode: undefined,
    exitSignal: undefined,
    emergencySignal,
  };
  let spawnError;
  // Kept private: startBridge() replaces handle.exited with a promise of the bare exit code.
  const exited = new Promise((resolve) => {
    child.on('error', (err) => {
      spawnError = err;
      push('stderr', `[harness] could not start ${command}: ${err.message}`);
      // 'exit' may not follow a spawn error.
      handle.exitCode = null;
      liveProcesses.delete(handle);
      resolve({ code: null, signal: null, error: err });
    });
    // 'close' (not 'exit'): all output has been read by then.
    child.on('close', (code, signal) => {
      handle.exitCode = code;
      handle.exitSignal = signal;
      liveProcesses.delete(handle);
      resolve({ code, signal, error: spawnError });
    });
  });
  handle.exited = exited;
  if (child.pid) liveProcesses.add(handle);

  handle.running = () => handle.exitCode === undefined;
  /** Index to pass as `since` to waitForLine / linesSince: "only lines after now". */
  handle.mark = () => dropped + lines.length;
  handle.linesSince = (since = 0) => lines.filter((l) => l.index >= since);
  handle.output = (since = 0) => handle.linesSince(since).map((l) => `${l.stream === 'stderr' ? '!' : ' '} ${l.text}`).join('\n');
  handle.text = (since = 0) => handle.linesSince(since).map((l) => l.text).join('\n');

  /** Resolves with the first line (at index >= since) matching re; rejects on timeout or exit. */
  handle.waitForLine = (re, timeoutMs = 10000, { since = 0, stream } = {}) => {
    const matches = (l) => l.index >= since && (!stream || l.stream === stream) && re.test(l.text);
    const found = lines.find(matches);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const done = (fn, v) => {
        clearTimeout(timer);
        waiters.delete(onLine);
        fn(v);
      };
      const onLine = (l) => {
        if (matches(l)) done(resolve, l);
      };
      const timer = setTimeout(() => done(reject, new Error(
        `${name}: no line matching ${re} within ${timeoutMs} ms. Output:\n${handle.output(since)}`)), timeoutMs);
      waiters.add(onLine);
      exited.then(({ code, signal }) => {
        if (waiters.has(onLine)) {
          done(reject, new Error(`${name} exited (code ${code}, signal ${signal}) before a line matching ${re}. Output:\n${handle.output(since)}`));
        }
      });
    });
  };

  handle.stop = async ({ signal = 'SIGTERM', killAfterMs = 10000 } = {}) => {
    if (!handle.running()) return exited;
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => {
      if (handle.running()) {
        push('stderr', `[harness] ${name} still running ${killAfterMs} ms after ${signal}: SIGKILL`);
        try {
          child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }, killAfterMs);
    const result = await exited;
    clearTimeout(timer);
    return result;
  };
  return handle;
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

function postgresUser() {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

/** Waits (bounded) until the PostgreSQL server `proc` answers a query at `url`; throws if it exits. */
export async function waitForPostgres(proc, url, timeoutMs) {
  await waitUntil(async () => {
    if (!proc.running()) throw new Error(`postgres exited:\n${proc.output()}`);
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } finally {
      await c.end().catch(() => {});
    }
  }, timeoutMs, { intervalMs: 100, message: 'PostgreSQL accepting connections' });
}

/**
 * Starts a throwaway PostgreSQL cluster (initdb in a temp dir, fsync=off, 127.0.0.1 on a free
 * port, trust auth) and installs sql/cache_invalidation.sql into database `postgres`.
 * With source 'wal' (default: IT_SOURCE) it runs with wal_level=logical and commit timestamps
 * (what storeMs() and stamp() read in place of the store the triggers write).
 * Returns {url, port, source, query(sql, params), client(), attach(), invalidate(),
 *          rawInvalidation(), storeMs(), changes(), stamp(), slot(), stop(), proc}.
 *   query: one statement (or several without params) on a shared pool; returns pg's result.
 *   client(): a dedicated connected pg.Client (closed by stop()).
 */
export async function startPostgres({ installSql = true, settings = {}, source: pgSource = source } = {}) {
  const dir = tempDir('cache-bridge-pg-');
  const dataDir = path.join(dir, 'data');
  const user = postgresUser();
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid);
  const pgEnv = cleanEnv({ LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' });

  const initdb = spawnCaptured(path.join(PG_BIN_DIR, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'],
    { name: 'initdb', env: pgEnv, cwd: dir, ...user });
  const initResult = await withTimeout(initdb.exited, 60000, 'initdb').catch(async (err) => {
    await initdb.stop({ signal: 'SIGKILL' });
    throw err;
  });
  if (initResult.code !== 0) {
    removeTempDir(dir);
    throw new Error(`initdb failed (code ${initResult.code}):\n${initdb.output()}`);
  }

  const port = await freePort();
  const options = {
    listen_addresses: '127.0.0.1', port: String(port), unix_socket_directories: '',
    fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off',
    shared_buffers: '32MB', max_connections: '50', log_min_messages: 'warning',
    // initdb's pg_hba.conf lets replication connections from 127.0.0.1 in (trust). A walsender
    // sends a commit once it is flushed: with synchronous_commit=off only when the WAL writer
    // gets to it (up to 3 x wal_writer_delay later), so on (fsync stays off: commits stay cheap).
    ...(pgSource === 'wal' ? { wal_level: 'logical', track_commit_timestamp: 'on', synchronous_commit: 'on',
      max_replication_slots: '20', max_wal_senders: '20' } : {}),
    ...settings,
  };
  const args = ['-D', dataDir];
  for (const [k, v] of Object.entries(options)) args.push('-c', `${k}=${v}`);
  // SIGQUIT is an immediate shutdown: used only if the run ends without stop().
  const proc = spawnCaptured(path.join(PG_BIN_DIR, 'postgres'), args,
    { name: 'postgres', env: pgEnv, cwd: dir, emergencySignal: 'SIGQUIT', ...user });

  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const pools = [];
  const clients = new Set();
  const stop = async () => {
    await Promise.allSettled([...clients].map((c) => withTimeout(c.end(), 3000, 'pg client end')));
    clients.clear();
    await Promise.allSettled(pools.map((p) => withTimeout(p.end(), 3000, 'pg pool end')));
    // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients to leave).
    await proc.stop({ signal: 'SIGINT', killAfterMs: 15000 });
    removeTempDir(dir);
  };

  try {
    await waitForPostgres(proc, url, 30000);
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n${proc.output()}`);
  }

  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000, application_name: 'it-harness' });
  pool.on('error', () => {}); // terminated idle connections are replaced on next use
  pools.push(pool);

  if (installSql) {
    const psql = spawnCaptured('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', SQL_FILE, url],
      { name: 'psql', env: pgEnv });
    const r = await withTimeout(psql.exited, 30000, 'psql install of sql/cache_invalidation.sql')
      .catch(async (err) => {
        await psql.stop({ signal: 'SIGKILL' });
        return { code: `timeout: ${err.message}` };
      });
    if (r.code !== 0) {
      await stop();
      throw new Error(`installing ${SQL_FILE} failed (code ${r.code}):\n${psql.output()}`);
    }
  }

  // storeMs() in epoch microseconds (see there).
  const changedUs = async (cacheKey) => {
    if (pgSource !== 'wal') {
      const r = await pool.query(
        `SELECT floor(extract(epoch FROM invalidated_at) * 1000000)::bigint AS us FROM cache_invalidated_at WHERE cache_key = $1`,
        [cacheKey]);
      return r.rows[0]?.us ?? undefined;
    }
    const reg = (await pool.query(
      `SELECT relid::text AS rel, key_column::text AS key_column, table_name FROM cache_invalidation_table
        WHERE left($1, length(table_name) + 1) = table_name || ':' ORDER BY length(table_name) DESC LIMIT 1`,
      [cacheKey])).rows[0];
    if (!reg) return undefined;
    const r = await pool.query(
      `SELECT floor(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint AS us
         FROM ${reg.rel} WHERE ${quoteIdent(reg.key_column)}::text = $1`, [cacheKey.slice(reg.table_name.length + 1)]);
    return r.rows[0]?.us ?? undefined;
  };

  return {
    url,
    port,
    proc,
    source: pgSource,
    query: (sql, params) => pool.query(sql, params),
    async client({ applicationName = 'it-harness' } = {}) {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, application_name: applicationName });
      c.on('error', () => {});
      await c.connect();
      clients.add(c);
      const end = c.end.bind(c);
      c.end = async () => {
        clients.delete(c);
        return end();
      };
      return c;
    },
    /**
     * Attaches a table the way the source under test reads it: notify: the triggers of `style`
     * ('json' or 'text'), with the row when rowData; wal: cache_invalidation_attach(..., 'wal')
     * (style is a trigger's matter: ignored), with the row when rowData.
     */
    async attach(table, keyColumn = 'id', { style = 'json', rowData = false } = {}) {
      if (pgSource === 'wal') {
        return pool.query(`SELECT cache_invalidation_attach($1::regclass, $2, 'wal', row_data => $3)`, [table, keyColumn, rowData]);
      }
      return pool.query(`SELECT cache_invalidation_attach($1::regclass, $2, $3, row_data => $4)`, [table, keyColumn, style, rowData]);
    },
    /** A by-hand invalidation of `cacheKey` (cache_invalidate(): NOTIFY and a WAL message), committed. */
    invalidate: (cacheKey) => pool.query('SELECT cache_invalidate($1)', [cacheKey]),
    /**
     * A by-hand payload as is, on the way the source under test reads by-hand invalidations:
     * NOTIFY on cache_invalidation (notify) or a transactional logical message with prefix
     * cache_invalidation (wal). For malformed or JSON payloads; plain keys: invalidate().
     */
    rawInvalidation: (payload) => (pgSource === 'wal'
      ? pool.query(`SELECT pg_logical_emit_message(true, 'cache_invalidation', $1)`, [payload])
      : pool.query(`SELECT pg_notify('cache_invalidation', $1)`, [payload])),
    /**
     * A database time in epoch ms at or before the moment a key's latest change became visible,
     * or undefined: notify: the store's invalidated_at (as the triggers report it); wal (no
     * store): the commit timestamp of the row that carries the key (none once deleted).
     */
    async storeMs(cacheKey) {
      const us = await changedUs(cacheKey);
      return us === undefined ? undefined : Math.floor(us / 1000);
    },
    /**
     * Every key of an attached table with a change the source knows of, and that change's time
     * as storeMs() gives it: Map(cacheKey -> ms). notify: the store's rows of the table; wal:
     * the table's rows (their keys and commit timestamps).
     */
    async changes(table) {
      if (pgSource !== 'wal') {
        const r = await pool.query(
          `SELECT cache_key, floor(extract(epoch FROM invalidated_at) * 1000)::bigint AS ms
             FROM cache_invalidated_at WHERE table_name = $1`, [table]);
        return new Map(r.rows.map((x) => [x.cache_key, x.ms]));
      }
      const reg = (await pool.query(
        `SELECT relid::text AS rel, key_column::text AS key_column FROM cache_invalidation_table WHERE table_name = $1`, [table])).rows[0];
      if (!reg) throw new Error(`changes(${table}): not attached`);
      const r = await pool.query(
        `SELECT $1 || ':' || ${quoteIdent(reg.key_column)}::text AS cache_key,
                floor(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::bigint AS ms
           FROM ${reg.rel} WHERE ${quoteIdent(reg.key_column)} IS NOT NULL`, [table]);
      return new Map(r.rows.map((x) => [x.cache_key, x.ms]));
    },
    /**
     * The stamp the bridge named `bridge` (BRIDGE_CURSOR_NAME) wrote for a key: {seq, ms}, ms being
     * the invalidatedAt its events carry. Waits (bounded) until the stamp exists and, when the
     * key's latest change is known (storeMs), covers it (the stamp is taken after that commit).
     */
    async stamp(cacheKey, { bridge = 'default', timeoutMs = 10000 } = {}) {
      const read = async () => (await pool.query(
        'SELECT seq FROM cache_bridge_stamp WHERE bridge_name = $1 AND cache_key = $2', [bridge, cacheKey])).rows[0]?.seq;
      // wal: a commit reaches the bridge a while after its commit timestamp (once flushed and
      // decoded), so a stamp of an earlier change can be later than the latest change's commit
      // time. Once the bridge's walsender has sent all WAL written before this call, a stamp
      // that is old, or that stays the same for a moment, is the latest change's.
      const sentTo = pgSource === 'wal' && (await pool.query('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn;
      const sent = async () => (await pool.query(
        `SELECT r.sent_lsn >= $2::pg_lsn AS ok FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
          WHERE s.slot_name = $1`, [slotOf(bridge), sentTo])).rows[0]?.ok === true;
      const sentDeadline = Date.now() + 3000; // past it (an idle server), go by the stamp alone
      return waitUntil(async () => {
        const seq = await read();
        if (seq === undefined) return undefined;
        const changed = await changedUs(cacheKey);
        if (changed !== undefined && seq < changed) return undefined;
        if (sentTo && Date.now() - seq / 1000 < 300) {
          if (!(await sent()) && Date.now() < sentDeadline) return undefined;
          await sleep(100);
          if ((await read()) !== seq) return undefined;
        }
        return { seq, ms: Math.floor(seq / 1000) + 1 };
      }, timeoutMs, { intervalMs: 50, message: `the bridge's stamp of ${cacheKey}` });
    },
    /** WAL: the replication slot's row of pg_replication_slots (lsn columns as text), or undefined. */
    async slot(name = slotOf()) {
      const r = await pool.query(
        `SELECT slot_name, active, active_pid, restart_lsn::text, confirmed_flush_lsn::text, wal_status
           FROM pg_replication_slots WHERE slot_name = $1`, [name]);
      return r.rows[0];
    },
    /** WAL: the server's current WAL position (text). */
    async walLsn() {
      return (await pool.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
    },
    /** WAL: whether the slot confirmed everything up to `lsn` (confirmed_flush_lsn >= lsn). */
    /**
     * WAL: waits (bounded) until the slot's reader has sent `count` status updates, each after
     * the previous wait began (pg_stat_replication.reply_time): whatever it would confirm by
     * now, it has told the server.
     */
    async slotReplies(name = slotOf(), { count = 2, timeoutMs = 15000 } = {}) {
      for (let i = 0; i < count; i++) {
        const { rows: [{ now }] } = await pool.query('SELECT clock_timestamp()::text AS now');
        await waitUntil(async () => (await pool.query(
          `SELECT r.reply_time > $2::timestamptz AS ok FROM pg_replication_slots s
             JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`, [name, now])).rows[0]?.ok === true,
        timeoutMs, { intervalMs: 100, message: `a status update from the reader of slot ${name}` });
      }
    },
    async slotConfirmed(name, lsn) {
      const r = await pool.query(
        'SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1', [name, lsn]);
      return r.rows[0]?.ok === true;
    },
    stop,
  };
}

// ---------------------------------------------------------------------------------------
// Soketi

/**
 * Soketi's settings for its Redis adapter on `redis` ({host, port}, as startRedis returns): nodes
 * on one Redis form one cluster. Messages between nodes go through Redis (adapter), and so does
 * the cache of cache- channels (SOKETI_CACHE_DRIVER), so that a node answers pusher:cache_miss
 * for what another node sent.
 */
export function soketiRedisEnv(redis) {
  return { SOKETI_ADAPTER_DRIVER: 'redis', SOKETI_CACHE_DRIVER: 'redis',
    SOKETI_DB_REDIS_HOST: redis.host, SOKETI_DB_REDIS_PORT: redis.port };
}

/**
 * Starts Soketi through scripts/soketi with a temp .env in the bridge's names, on free ports
 * (or the given ones, e.g. to restart on the same port), and waits until GET / answers 200.
 * With `redis` ({host, port}: startRedis()), it is a node of the cluster on that Redis
 * (soketiRedisEnv); waitUntilLinked() says when nodes pass messages to each other.
 * With `tls` ({cert, key: PEM file paths, passphrase?, ca?: PEM to trust, default the cert's
 * text, as for a self-signed one}), its port speaks TLS only (SOKETI_SSL_CERT / _KEY / _PASS:
 * Soketi then serves uWS.SSLApp, https and wss): url is https://, the readiness check and the
 * server SDK trust `ca`, and `ca` is returned for subscribers (subscribe({ca})).
 * Returns {host, port, metricsPort, appId, key, secret, url, ca, proc, pusher (server SDK), stop(),
 *          options (to start it again identically)}.
 */
export async function startSoketi({ appId = 'app-id', key = 'app-key', secret = 'app-secret', webhookUrl,
  eventTypes = ['channel_occupied', 'cache_miss'], batchSize, maxSizeKb, debug = false, port, metricsPort,
  redis, tls, env = {}, startTimeoutMs = 30000 } = {}) {
  port ??= await freePort();
  metricsPort ??= await freePort();
  const dir = tempDir('cache-bridge-soketi-');
  const fileEnv = {
    SOKETI_APP_ID: appId,
    SOKETI_APP_KEY: key,
    SOKETI_APP_SECRET: secret,
    SOKETI_PORT: port,
    SOKETI_DEBUG: debug ? 1 : 0,
    SOKETI_METRICS_SERVER_PORT: metricsPort,
    SOKETI_WEBHOOK_URL: webhookUrl,
    SOKETI_WEBHOOK_EVENT_TYPES: webhookUrl ? eventTypes.join(',') : undefined,
    SOKETI_EVENT_MAX_BATCH_SIZE: batchSize,
    SOKETI_EVENT_MAX_SIZE_IN_KB: maxSizeKb,
    SOKETI_SSL_CERT: tls?.cert,
    SOKETI_SSL_KEY: tls?.key,
    SOKETI_SSL_PASS: tls?.passphrase,
  };
  const ca = tls && (tls.ca ?? readFileSync(tls.cert, 'utf8'));
  const envFile = writeEnvFile(path.join(dir, '.env'), fileEnv);
  // Tests stop and restart Soketi: a short grace period keeps that quick.
  // Soketi's node discovery would broadcast UDP and merge parallel instances into one cluster:
  // keep it on loopback, on a port of its own.
  const procEnv = cleanEnv({
    SOKETI_SHUTDOWN_GRACE_PERIOD: 200, SOKETI_METRICS_HOST: '127.0.0.1',
    SOKETI_CLUSTER_HOST: '127.0.0.1', SOKETI_CLUSTER_UNICAST_ADDRESSES: '127.0.0.1',
    SOKETI_CLUSTER_PORT: await freePort(), ...(redis ? soketiRedisEnv(redis) : {}), ...env });
  const proc = spawnCaptured(SOKETI_SCRIPT, ['--env-file', envFile], { name: redis ? `soketi:${port}` : 'soketi', env: procEnv, cwd: dir });
  const base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const stop = async () => {
    const r = await proc.stop({ signal: 'SIGTERM', killAfterMs: 15000 });
    removeTempDir(dir);
    return r;
  };
  try {
    await waitUntil(async () => {
      if (!proc.running()) throw new Error(`soketi exited:\n${proc.output()}`);
      return (await http(`${base}/`, { timeoutMs: 1000, ca })).status === 200;
    }, startTimeoutMs, { intervalMs: 100, message: `Soketi answering GET ${base}/` });
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n${proc.output()}`);
  }
  const pusher = new PusherServer({ appId, key, secret, host: '127.0.0.1', port: String(port), useTLS: Boolean(tls),
    ...(tls ? { agent: new https.Agent({ ca }) } : {}) });
  return {
    host: '127.0.0.1',
    port,
    metricsPort,
    appId,
    key,
    secret,
    url: base,
    ca,
    proc,
    pusher,
    options: { appId, key, secret, webhookUrl, eventTypes, batchSize, maxSizeKb, debug, port, metricsPort, redis, tls, env },
    /** Names of channels with at least one subscriber (Soketi's HTTP API). */
    async occupiedChannels() {
      const res = await pusher.get({ path: '/channels' });
      const body = await res.json();
      return Object.keys(body.channels ?? {});
    },
    stop,
  };
}

// ---------------------------------------------------------------------------------------
// Redis, for Soketi clusters

export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN || 'redis-server';

/** One RESP round trip to Redis at host:port: resolves with the first reply line (e.g. "+PONG"). */
function redisCommand(host, port, command, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let reply = '';
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => { socket.destroy(); reject(new Error(`redis ${command}: no answer within ${timeoutMs} ms`)); });
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk;
      const nl = reply.indexOf('\r\n');
      if (nl >= 0) {
        socket.destroy();
        resolve(reply.slice(0, nl));
      }
    });
    socket.on('error', (err) => { socket.destroy(); reject(err); });
  });
}

/**
 * Starts a private redis-server (Debian's redis-server; REDIS_SERVER_BIN overrides): 127.0.0.1 on a
 * free port, a temp dir, no persistence, and waits until it answers PING.
 * Returns {host, port, proc, stop()}.
 */
export async function startRedis({ startTimeoutMs = 15000 } = {}) {
  const dir = tempDir('cache-bridge-redis-');
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--protected-mode', 'yes', '--logfile', '', '--databases', '1'];
  const proc = spawnCaptured(REDIS_SERVER_BIN, args, { name: 'redis-server', env: cleanEnv(), cwd: dir });
  const stop = async () => {
    const r = await proc.stop({ signal: 'SIGTERM', killAfterMs: 10000 });
    removeTempDir(dir);
    return r;
  };
  try {
    await waitUntil(async () => {
      if (!proc.running()) throw new Error(`redis-server exited:\n${proc.output()}`);
      return (await redisCommand('127.0.0.1', port, 'PING')) === '+PONG';
    }, startTimeoutMs, { intervalMs: 100, message: `redis-server answering PING on 127.0.0.1:${port}` });
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n${proc.output()}`);
  }
  return { host: '127.0.0.1', port, proc, stop };
}

/**
 * Waits (bounded) until every node of `nodes` (startSoketi handles on one Redis) passes what its
 * HTTP API is given to the subscribers of every other node: a node answers GET / before its
 * Redis subscriptions are in place. Triggers a probe event on a private channel until it arrives.
 */
export async function waitUntilLinked(nodes, { timeoutMs = 15000 } = {}) {
  for (const from of nodes) {
    for (const to of nodes) {
      if (from === to) continue;
      const channel = `cluster-probe-${from.port}-${to.port}-${Math.random().toString(36).slice(2, 8)}`;
      const sub = await subscribe({ port: to.port, key: to.key, secret: to.secret, ca: to.ca, channel });
      try {
        await waitUntil(async () => {
          await from.pusher.trigger(channel, 'probe', { from: from.port });
          return sub.waitFor((e) => e.event === 'probe', 300).then(() => true, () => false);
        }, timeoutMs, { intervalMs: 50, message: `Soketi ${from.port} reaching subscribers of ${to.port}` });
      } finally {
        await sub.disconnect();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// The bridge

/**
 * Spawns the bridge with `--env-file <temp file>` written from `env` (or the given `envFile`),
 * in a temp working directory, with the inherited environment stripped of config keys plus
 * `processEnv` (real environment variables, which override the file).
 * ready: 'readyz' waits for GET /readyz 200, 'healthz' for GET /healthz 200 (both on the
 *   operators' port, BRIDGE_OPS_LISTEN: a free one unless given), a RegExp waits for a matching
 *   log line, false does not wait.
 * Returns the captured process handle plus {exited (resolves to the exit code), stop(),
 *   baseUrl (the webhook and /snapshot server), opsUrl (/healthz, /readyz, /metrics)}.
 */
export async function startBridge({ env = {}, envFile, processEnv = {}, args = [], ready = 'readyz',
  readyTimeoutMs = 20000, bin = BRIDGE_BIN, name = 'cache-bridge' } = {}) {
  if (!existsSync(bin)) {
    throw new Error(`bridge binary ${bin} not found: build it (cmake -S . -B build && cmake --build build -j2) or set CACHE_BRIDGE_BIN`);
  }
  const dir = tempDir('cache-bridge-run-');
  envFile ??= writeEnvFile(path.join(dir, 'bridge.env'), env);
  // The operators' server (probes, metrics) gets a port of its own, so that bridges of
  // parallel tests never collide on the default.
  const opsListen = processEnv.BRIDGE_OPS_LISTEN ?? env.BRIDGE_OPS_LISTEN ?? `127.0.0.1:${await freePort()}`;
  processEnv = { BRIDGE_OPS_LISTEN: opsListen, ...processEnv };
  const proc = spawnCaptured(bin, ['--env-file', envFile, ...args], { name, env: cleanEnv(processEnv), cwd: dir });
  const webhookUrl = processEnv.SOKETI_WEBHOOK_URL ?? env.SOKETI_WEBHOOK_URL;
  const baseUrl = webhookUrl ? new URL(webhookUrl).origin : undefined;
  const opsUrl = `http://${opsListen}`;
  const exitedFull = proc.exited;
  const bridge = Object.assign(proc, {
    baseUrl,
    opsUrl,
    envFile,
    exited: exitedFull.then((r) => r.code),
    exitedFull,
  });
  const stopProc = proc.stop;
  bridge.stop = async (opts = {}) => {
    const r = await stopProc({ signal: 'SIGTERM', killAfterMs: 10000, ...opts });
    removeTempDir(dir);
    return r;
  };
  try {
    if (ready === 'readyz' || ready === 'healthz') {
      await waitUntil(async () => {
        if (!bridge.running()) throw new Error('bridge exited');
        return (await http(`${opsUrl}/${ready}`, { timeoutMs: 1000 })).status === 200;
      }, readyTimeoutMs, { intervalMs: 100, message: `bridge GET /${ready} 200` });
    } else if (ready instanceof RegExp) {
      await bridge.waitForLine(ready, readyTimeoutMs);
    }
  } catch (err) {
    await bridge.stop();
    throw new Error(`${err.message}\nbridge output:\n${bridge.output()}`);
  }
  return bridge;
}

/** Runs the bridge to completion (config errors, --check). Returns {code, signal, lines, text, output}. */
export async function runBridge({ timeoutMs = 30000, ...opts } = {}) {
  const bridge = await startBridge({ ...opts, ready: false });
  const result = await withTimeout(bridge.exitedFull, timeoutMs, 'cache-bridge run').catch(async (err) => {
    await bridge.stop({ signal: 'SIGKILL' });
    throw new Error(`${err.message}\nOutput:\n${bridge.output()}`);
  });
  await bridge.stop();
  return { code: result.code, signal: result.signal, lines: bridge.lines, text: bridge.text(), output: bridge.output() };
}

// ---------------------------------------------------------------------------------------
// pusher-js subscriber

// pusher-js (Node) opens its sockets with faye-websocket's Client(url), passing no TLS options,
// and none of its own options reaches them. faye's Client takes {ca} as its third argument: for
// wss:// origins registered here, the constructor pusher-js gets (Pusher.Runtime.getWebSocketAPI,
// which its ws transport calls per socket) adds the origin's CA, so that a test trusts exactly
// its own certificate; NODE_TLS_REJECT_UNAUTHORIZED=0 would turn verification off process-wide.
// Installed on the first wss client only: plain ws:// clients never go through it.
const caByWssOrigin = new Map(); // 'host:port' -> PEM
function trustForPusherJs(host, port, ca) {
  if (caByWssOrigin.size === 0) {
    const FayeClient = PusherClient.Runtime.getWebSocketAPI();
    PusherClient.Runtime.getWebSocketAPI = () => function WebSocketTrustingTestCa(url, protocols, options = {}) {
      const u = new URL(url);
      const trusted = u.protocol === 'wss:' ? caByWssOrigin.get(u.host) : undefined;
      return new FayeClient(url, protocols, trusted ? { ...options, ca: trusted } : options);
    };
  }
  caByWssOrigin.set(`${host}:${port}`, ca);
}

/**
 * A pusher-js client for Soketi on 127.0.0.1:port. With `secret`, private- and presence-
 * channels are authorised in-process, signed as an app's auth endpoint would sign them.
 * With `ca` (PEM: startSoketi({tls}) returns it), it connects over wss, trusting that CA.
 */
export function pusherClient({ port, key = 'app-key', secret, host = '127.0.0.1', ca }) {
  const channelAuthorization = secret && {
    customHandler: ({ socketId, channelName }, callback) => {
      callback(null, { auth: `${key}:${createHmac('sha256', secret).update(`${socketId}:${channelName}`).digest('hex')}` });
    },
  };
  if (ca) trustForPusherJs(host, port, ca);
  return new PusherClient(key, {
    wsHost: host,
    wsPort: port,
    ...(ca ? { wssPort: port, forceTLS: true } : { forceTLS: false }),
    enabledTransports: ['ws'],
    cluster: 'mt1',
    disableStats: true,
    ...(channelAuthorization ? { channelAuthorization } : {}),
  });
}

/**
 * Connects a pusher-js client to Soketi and subscribes to `channel`; resolves once
 * pusher:subscription_succeeded arrived. Returns
 *   {events: [{event, data, receivedAt}] (application events, in arrival order),
 *    internal: [...] (pusher:* events such as pusher:cache_miss), waitFor(predicate, timeoutMs),
 *    waitForCount(predicate, n, timeoutMs), disconnect()}.
 */
export async function subscribe({ port, key = 'app-key', secret, channel, host = '127.0.0.1', ca, timeoutMs = 10000 }) {
  const client = pusherClient({ port, key, secret, host, ca });
  const events = [];
  const internal = [];
  const listeners = new Set();
  const ch = client.subscribe(channel);
  ch.bind_global((event, data) => {
    const entry = { event, data, receivedAt: Date.now() };
    if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) {
      internal.push(entry);
    } else {
      events.push(entry);
    }
    for (const l of listeners) l(entry);
  });

  let disconnected = false;
  const disconnect = async () => {
    if (disconnected) return;
    disconnected = true;
    const state = client.connection.state;
    if (state === 'disconnected' || state === 'failed') return;
    const gone = new Promise((resolve) => client.connection.bind('state_change', ({ current }) => {
      if (current === 'disconnected' || current === 'failed') resolve();
    }));
    client.disconnect();
    await withTimeout(gone, 3000, 'pusher-js disconnect').catch(() => {});
    // Let Soketi notice the closed socket (unsubscribe, channel_vacated) before going on.
    await sleep(50);
  };

  try {
    await withTimeout(new Promise((resolve, reject) => {
      ch.bind('pusher:subscription_succeeded', () => resolve());
      ch.bind('pusher:subscription_error', (status) => reject(new Error(`subscription_error: ${JSON.stringify(status)}`)));
      client.connection.bind('failed', () => reject(new Error('pusher-js connection failed')));
      client.connection.bind('unavailable', () => reject(new Error('pusher-js connection unavailable')));
    }), timeoutMs, `subscribing to ${channel} on 127.0.0.1:${port}`);
  } catch (err) {
    await disconnect();
    throw err;
  }

  const describe = () => events.map((e) => `${new Date(e.receivedAt).toISOString()} ${e.event} ${JSON.stringify(e.data)}`).join('\n') || '(no events)';

  /** Resolves with the first event (already received or future) for which predicate(entry) is true. */
  const waitFor = (predicate, waitMs = 10000) => {
    const found = events.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onEvent = (e) => {
        if (!e.event.startsWith('pusher') && predicate(e)) {
          clearTimeout(timer);
          listeners.delete(onEvent);
          resolve(e);
        }
      };
      const timer = setTimeout(() => {
        listeners.delete(onEvent);
        reject(new Error(`no matching event on ${channel} within ${waitMs} ms; received:\n${describe()}`));
      }, waitMs);
      listeners.add(onEvent);
    });
  };

  /** Resolves with the matching events once at least n have arrived. */
  const waitForCount = async (predicate, n, waitMs = 10000) => {
    await waitUntil(() => events.filter(predicate).length >= n, waitMs,
      { message: `${n} matching events on ${channel}` }).catch((err) => {
      throw new Error(`${err.message}; received:\n${describe()}`);
    });
    return events.filter(predicate);
  };

  return { client, channel, events, internal, waitFor, waitForCount, describe, disconnect };
}

/** Event predicate helper: application event `name` whose data.cacheKey is `cacheKey`. */
export const isInvalidation = (cacheKey, name = 'cache-invalidate') => (e) => e.event === name && e.data?.cacheKey === cacheKey;

/** Like isInvalidation, but only live events (not replays). */
export const isLiveInvalidation = (cacheKey, name = 'cache-invalidate') => (e) =>
  isInvalidation(cacheKey, name)(e) && e.data.replay !== true;

/** The bridge's text log lines at level warn or error (`<ISO time> <level> <message>`). */
export const WARN_OR_ERROR = /^\S+\s+(warn|warning|error|fatal)\b/i;

// ---------------------------------------------------------------------------------------
// A whole stack: PostgreSQL + Soketi (with webhooks to the bridge's port) + bridge env.

/**
 * Starts PostgreSQL and Soketi, with Soketi's webhooks pointed at a port reserved for the bridge.
 * Returns {pg, soketi, source, bridgePort, webhookUrl, bridgeEnv(overrides), startBridge(overrides, opts),
 *          slotOf(cursorName), stop()}.
 * source (default IT_SOURCE): the bridge's BRIDGE_SOURCE; under 'wal' each BRIDGE_CURSOR_NAME
 * reads a replication slot of its own (slotOf), as each has a cursor of its own under notify.
 * Bridges started through the stack are stopped by stack.stop().
 */
export async function startStack({ soketi: soketiOptions = {}, pg: pgOptions = {}, source: stackSource = source } = {}) {
  const bridgePort = await freePort();
  const opsPort = await freePort();
  const webhookPath = '/soketi/webhook';
  const webhookUrl = `http://127.0.0.1:${bridgePort}${webhookPath}`;
  const db = await startPostgres({ source: stackSource, ...pgOptions });
  let soketi;
  try {
    soketi = await startSoketi({ webhookUrl, ...soketiOptions });
  } catch (err) {
    await db.stop();
    throw err;
  }
  const bridges = new Set();
  const stack = {
    /** Every bridge started through the stack, running or not (e.g. to scan all their logs). */
    bridgesStarted: [],
    pg: db,
    soketi,
    source: stackSource,
    slotOf,
    bridgePort,
    webhookUrl,
    webhookPath,
    baseUrl: `http://127.0.0.1:${bridgePort}`,
    /** The operators' server of the stack's bridges: /healthz, /readyz, /metrics. */
    opsUrl: `http://127.0.0.1:${opsPort}`,
    bridgeEnv(overrides = {}) {
      return {
        DATABASE_URL: db.url,
        SOKETI_APP_ID: stack.soketi.appId,
        SOKETI_APP_KEY: stack.soketi.key,
        SOKETI_APP_SECRET: stack.soketi.secret,
        SOKETI_HOST: '127.0.0.1',
        SOKETI_PORT: stack.soketi.port,
        SOKETI_WEBHOOK_URL: webhookUrl,
        BRIDGE_HTTP_BIND: '127.0.0.1',
        BRIDGE_OPS_LISTEN: `127.0.0.1:${opsPort}`,
        BRIDGE_LOG_FORMAT: 'text',
        ...(stackSource === 'wal' ? { BRIDGE_SOURCE: 'wal', BRIDGE_SLOT: slotOf(overrides.BRIDGE_CURSOR_NAME) } : {}),
        ...overrides,
      };
    },
    /**
     * Env overrides that give a bridge webhook and operators' ports of its own (so that several
     * run side by side, e.g. an active one and standbys): {SOKETI_WEBHOOK_URL, BRIDGE_OPS_LISTEN}.
     * Soketi's webhooks keep going to the stack's webhookUrl.
     */
    async ownPorts() {
      return {
        SOKETI_WEBHOOK_URL: `http://127.0.0.1:${await freePort()}${webhookPath}`,
        BRIDGE_OPS_LISTEN: `127.0.0.1:${await freePort()}`,
      };
    },
    async startBridge(overrides = {}, opts = {}) {
      const b = await startBridge({ env: stack.bridgeEnv(overrides), ...opts });
      bridges.add(b);
      stack.bridgesStarted.push(b);
      b.exitedFull.then(() => bridges.delete(b));
      return b;
    },
    /** Stops every running bridge of the stack (they share the webhook port), then starts one. */
    async useBridge(overrides = {}, opts = {}) {
      await Promise.allSettled([...bridges].map((b) => b.stop()));
      return stack.startBridge(overrides, opts);
    },
    /** Stops Soketi and starts it again with the same ports and settings. */
    async restartSoketi() {
      await stack.soketi.stop();
      stack.soketi = await startSoketi(stack.soketi.options);
      return stack.soketi;
    },
    subscribe(channel, opts = {}) {
      return subscribe({ port: stack.soketi.port, key: stack.soketi.key, secret: stack.soketi.secret, ca: stack.soketi.ca,
        channel, ...opts });
    },
    /**
     * Posts a webhook to the bridge as Soketi does: {time_ms, events} signed with the app's
     * secret (or `secret`), to the stack's webhook URL (or `url`: another bridge's).
     * events: [{name, channel}]. Returns {status, text}.
     */
    postWebhook(events, { timeMs = Date.now(), secret = stack.soketi.secret, url = webhookUrl } = {}) {
      const body = JSON.stringify({ time_ms: timeMs, events });
      return http(url, { method: 'POST', body, headers: {
        'Content-Type': 'application/json', 'X-Pusher-Key': stack.soketi.key, 'X-Pusher-Signature': signWebhook(body, secret) } });
    },
    /** A pusher-js client for this stack's Soketi (private channels authorised). */
    pusherClient() {
      return pusherClient({ port: stack.soketi.port, key: stack.soketi.key, secret: stack.soketi.secret, ca: stack.soketi.ca });
    },
    async stop() {
      await Promise.allSettled([...bridges].map((b) => b.stop()));
      await Promise.allSettled([stack.soketi.stop(), db.stop()]);
    },
  };
  return stack;
}
