#!/usr/bin/env node
// Issue 9's "writers" benchmark (scripts/bench-writers installs, builds, then runs this):
// what invalidation costs the writers, measured with pgbench against a private PostgreSQL 15
// cluster, with a real Soketi and a real pusher-js subscriber.
//
//   node scripts/bench-writers.mjs [--quick] [--seconds N] [--runs N] [--only REGEX]
//                                  [--columns LIST] [--seed N] [--out PATH]
//
// Columns (one pgbench cell each, same workload, same --random-seed):
//   none         no trigger
//   bare         a per-row AFTER UPDATE trigger doing only pg_notify('bench', NEW.id::text), no listener
//   lean         SELECT cache_invalidation_attach(table, 'id') as sql/cache_invalidation.sql defines it,
//                the bridge running (BRIDGE_SOURCE=notify, its default) and publishing to Soketi
//   recvlogical  the table in publication cache_invalidation, pg_recvlogical (pgoutput, proto 1)
//                reading the slot to /dev/null: the walsender's decoding alone
//   wal          SELECT cache_invalidation_attach(table, 'id', 'wal'), the bridge with
//                BRIDGE_SOURCE=wal reading its slot and publishing to Soketi
// Each cell runs pinned (PostgreSQL and pgbench on CPU 0; bridge, Soketi, subscriber,
// pg_recvlogical and this driver on CPU 1) and unpinned (everything on both). Between cells:
// triggers, publication membership and slots dropped, the store truncated, VACUUM, CHECKPOINT.
//
// Process layout: this driver orchestrates; pgbench, PostgreSQL, Soketi, the bridge and
// pg_recvlogical are child processes (tests/integration/harness.mjs kills them on exit or
// Ctrl-C and removes the temp dirs); the pusher-js subscriber is this file forked with
// --subscriber-worker, and Soketi's intake is measured with scripts/benchmark/ceiling.mjs.
import { fork, execFileSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync, writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const requireScripts = createRequire(path.join(here, 'package.json'));
const CHANNEL = 'invalidations'; // BRIDGE_CHANNEL's default
const PUBLICATION = 'cache_invalidation';
const COLUMNS = ['none', 'bare', 'lean', 'recvlogical', 'wal'];
// Not in the default set: lean's triggers with no bridge running (what the triggers alone cost).
const EXTRA_COLUMNS = ['lean-nobridge'];
const ALL_COLUMNS = ['none', 'bare', 'lean-nobridge', 'lean', 'recvlogical', 'wal'];
const BRIDGE_COLUMNS = new Set(['lean', 'wal']);
const ROWS = 100000;
const WIDE_ROWS = 50;
const WIDE_BYTES = 1 << 20;

// ---------------------------------------------------------------------------------------
// Workloads: pgbench custom scripts. Every UPDATE sets t = clock_timestamp(), so the rows a
// cell changed (and when their last change happened) can be read back afterwards.

const WORKLOADS = [
  { id: 'single-1', label: 'single-row UPDATE, random key', clients: 1, table: 'bench_rows', rowsPerTx: 1,
    script: `\\set id random(1, ${ROWS})\nUPDATE bench_rows SET v = v + 1, t = clock_timestamp() WHERE id = :id;\n` },
  { id: 'single-4', label: 'single-row UPDATE, random key', clients: 4, table: 'bench_rows', rowsPerTx: 1,
    script: `\\set id random(1, ${ROWS})\nUPDATE bench_rows SET v = v + 1, t = clock_timestamp() WHERE id = :id;\n` },
  // Aligned blocks of 100 ids: two statements on one block lock its rows in the same order.
  { id: 'rows100-1', label: '100-row UPDATE statement', clients: 1, table: 'bench_rows', rowsPerTx: 100,
    script: `\\set lo random(0, ${ROWS / 100 - 1}) * 100\nUPDATE bench_rows SET v = v + 1, t = clock_timestamp() WHERE id > :lo AND id <= :lo + 100;\n` },
  { id: 'rows100-4', label: '100-row UPDATE statement', clients: 4, table: 'bench_rows', rowsPerTx: 100,
    script: `\\set lo random(0, ${ROWS / 100 - 1}) * 100\nUPDATE bench_rows SET v = v + 1, t = clock_timestamp() WHERE id > :lo AND id <= :lo + 100;\n` },
  { id: 'hot-4', label: 'hot key (one row)', clients: 4, table: 'bench_rows', rowsPerTx: 1,
    script: 'UPDATE bench_rows SET v = v + 1, t = clock_timestamp() WHERE id = 1;\n' },
  { id: 'toast-1', label: `wide TOASTed rows (${WIDE_ROWS} × 1 MiB), small column`, clients: 1, table: 'bench_wide', rowsPerTx: 1,
    script: `\\set id random(1, ${WIDE_ROWS})\nUPDATE bench_wide SET v = v + 1, t = clock_timestamp() WHERE id = :id;\n` },
];

// ---------------------------------------------------------------------------------------
// Arguments

const USAGE = `usage: scripts/bench-writers [--quick] [--seconds N] [--runs N] [--only REGEX] [--columns LIST]
                            [--seed N] [--out PATH]

Issue 9's "writers" benchmark: pgbench tx/s of the writers with no invalidation (none), a bare
per-row pg_notify trigger (bare), the project's triggers + the bridge (lean), pg_recvlogical
reading a slot to /dev/null (recvlogical) and the bridge's WAL source (wal), pinned
(PostgreSQL + pgbench on CPU 0, the rest on CPU 1) and unpinned; ratios within each run, WAL
bytes per changed row, deadlocks, and whether the bridge delivered every change.

  --quick          2 s cells, one run (smoke test; about 4 minutes)
  --seconds N      pgbench -T per cell (default 8)
  --runs N         rounds of every cell, pinned and unpinned (default 2; ratios within a round)
  --only REGEX     workloads whose id matches (${WORKLOADS.map((w) => w.id).join(', ')})
  --columns LIST   comma list of columns (default ${COLUMNS.join(',')}; also ${EXTRA_COLUMNS.join(',')}:
                   the lean triggers with no bridge running)
  --pin MODES      pinned,unpinned (default both)
  --seed N         pgbench --random-seed (default 42; the same for every cell)
  --out PATH       also write the Markdown there (default .local/bench-writers.md)

Environment: CACHE_BRIDGE_BIN (the bridge binary; scripts/bench-writers builds build/bridge/cache-bridge
when unset), PG_BIN_DIR (default /usr/lib/postgresql/15/bin), BENCH_VERBOSE=1 (child output).
Markdown on stdout, progress on stderr.`;

function parseArgs(argv) {
  const o = { quick: false, seconds: null, runs: null, only: null, columns: COLUMNS, seed: 42,
    pins: ['pinned', 'unpinned'], out: path.join(repoRoot, '.local', 'bench-writers.md') };
  const num = (a, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) die(`${a} needs a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--seconds') o.seconds = num(a, argv[++i]);
    else if (a === '--runs') o.runs = num(a, argv[++i]);
    else if (a === '--seed') o.seed = num(a, argv[++i]);
    else if (a === '--only') o.only = new RegExp(argv[++i] ?? '');
    else if (a === '--out') o.out = path.resolve(argv[++i] ?? '');
    else if (a === '--columns') {
      o.columns = (argv[++i] ?? '').split(',').filter(Boolean);
      const bad = o.columns.filter((c) => !ALL_COLUMNS.includes(c));
      if (bad.length || !o.columns.length) die(`--columns: unknown ${bad.join(',') || '(empty)'}; known ${ALL_COLUMNS.join(',')}`);
      o.columns = ALL_COLUMNS.filter((c) => o.columns.includes(c));
    } else if (a === '--pin') {
      o.pins = (argv[++i] ?? '').split(',').filter(Boolean);
      if (!o.pins.length || o.pins.some((p) => p !== 'pinned' && p !== 'unpinned')) die('--pin: pinned and/or unpinned');
    } else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else die(`unknown argument ${a}\n${USAGE}`);
  }
  o.seconds ??= o.quick ? 2 : 8;
  o.runs ??= o.quick ? 1 : 2;
  o.workloads = WORKLOADS.filter((w) => !o.only || o.only.test(w.id));
  if (!o.workloads.length) die(`--only matches no workload (${WORKLOADS.map((w) => w.id).join(', ')})`);
  // After the writers stop, how long the bridge may take to deliver the rest: a base plus
  // 1 s per 10,000 changed rows (a bridge behind at saturation drains at ~20,000 events/s
  // here), at most 5 minutes; and it stops waiting once nothing arrived for tailIdleMs.
  o.tailBaseMs = o.quick ? 15000 : 30000;
  o.tailPerRowMs = 0.1;
  o.tailMaxMs = 300000;
  o.tailIdleMs = o.quick ? 4000 : 8000;
  return o;
}

function die(msg) {
  console.error(`bench-writers: ${msg}`);
  process.exit(2);
}

const log = (msg) => process.stderr.write(`bench-writers: ${msg}\n`);

// ---------------------------------------------------------------------------------------
// CPU affinity

const CPU_PG = '0';
const CPU_REST = '1';
const CPU_ALL = '0,1';

function setAffinity(pid, cpus) {
  if (!pid) return;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
  } catch {
    /* exited meanwhile */
  }
}

function childPids(pid) {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)]).toString().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------
// The driver

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const H = await import('../tests/integration/harness.mjs');
  const pg = requireScripts('pg');
  const { forkWorker } = await import('./benchmark/ipc.mjs');
  const bench = new Bench(opts, H, pg, forkWorker);
  const startedAt = new Date();
  const machine = { cores: os.cpus().length, model: os.cpus()[0]?.model?.trim() ?? '?', loadBefore: os.loadavg() };
  try {
    await bench.start();
    for (let run = 0; run < opts.runs; run++) {
      const pins = run % 2 === 0 ? opts.pins : [...opts.pins].reverse();
      for (const pin of pins) {
        await bench.usePin(pin);
        const columns = run % 2 === 0 ? opts.columns : [...opts.columns].reverse();
        for (const w of opts.workloads) {
          for (const column of columns) {
            const t0 = Date.now();
            const r = await bench.cell(w, column, run, pin);
            bench.results.push(r);
            log(`run ${run + 1} ${pin} ${w.id} ${column}: ${r.na ? `n/a (${r.na})` : `${fmt(r.tps)} tx/s, ` +
              `${fmt(r.walPerRow)} (+${fmt(r.walFpiPerRow)} FPI) WAL B/row, failed ${r.failed}, deadlocks ${r.deadlocks}` +
              (r.bridgeCpuPct !== undefined ? `, bridge CPU ${fmt(r.bridgeCpuPct)}%` : '') +
              (r.delivery ? `, keys ${r.delivery.delivered}/${r.delivery.expected}, final ${r.delivery.final}, ` +
                `events ${r.delivery.events}, tail ${(r.delivery.tailMs / 1000).toFixed(1)} s` : '')}` +
              ` (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
          }
        }
        if (opts.columns.includes('wal') || opts.columns.includes('lean')) {
          const c = await bench.ceiling(run, pin).catch((err) => ({ run, pin, error: String(err.message ?? err).split('\n')[0] }));
          bench.ceilings.push(c);
          log(`run ${run + 1} ${pin} Soketi intake: ${c.error ? `failed (${c.error})` : `${fmt(c.perSec)} events/s`}`);
        }
      }
    }
  } finally {
    await bench.stop();
  }
  const report = renderReport({ opts, results: bench.results, ceilings: bench.ceilings, startedAt,
    finishedAt: new Date(), machine: { ...machine, loadAfter: os.loadavg() }, info: bench.info });
  process.stdout.write(report);
  try {
    mkdirSync(path.dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, report);
    writeFileSync(opts.out.replace(/\.md$/, '') + '.json', JSON.stringify({ startedAt, results: bench.results, ceilings: bench.ceilings }, null, 2));
    log(`wrote ${opts.out}`);
  } catch (err) {
    log(`could not write ${opts.out}: ${err.message}`);
  }
  process.exit(0);
}

class Bench {
  constructor(opts, H, pg, forkWorker) {
    Object.assign(this, { opts, H, pg, forkWorker });
    this.results = [];
    this.ceilings = [];
    this.info = {};
    this.pin = 'unpinned';
    this.slotSeq = 0;
  }

  // --- infrastructure ------------------------------------------------------------------

  async start() {
    const { H } = this;
    if (!existsSync(H.BRIDGE_BIN)) throw new Error(`bridge binary ${H.BRIDGE_BIN} not found (set CACHE_BRIDGE_BIN)`);
    log(`bridge binary: ${H.BRIDGE_BIN}`);
    await this.startPostgres();
    await this.installSchema();
    this.bridgePort = await H.freePort();
    this.webhookUrl = `http://127.0.0.1:${this.bridgePort}/soketi/webhook`;
    log('starting Soketi');
    this.soketi = await H.startSoketi({ webhookUrl: this.webhookUrl });
    this.sub = forkSubscriber();
    await this.sub.call('connect', { port: this.soketi.port, key: this.soketi.key, channel: CHANNEL }, 30000);
    this.ceilingGen = this.forkWorker(path.join(here, 'benchmark', 'ceiling.mjs'), { name: 'ceiling' });
    this.scriptDir = H.tempDir('bench-writers-scripts-');
    for (const w of WORKLOADS) writeFileSync(path.join(this.scriptDir, `${w.id}.sql`), w.script);
  }

  async stop() {
    await this.stopConsumers().catch(() => {});
    await Promise.allSettled([this.sub?.stop(), this.ceilingGen?.stop()].filter(Boolean));
    await this.soketi?.stop().catch(() => {});
    await this.pool?.end().catch(() => {});
    if (this.pgProc) await this.pgProc.stop({ signal: 'SIGINT', killAfterMs: 15000 });
  }

  /**
   * A private cluster set up as a deployment would be: fsync, synchronous_commit and
   * full_page_writes on (PostgreSQL's defaults), so a commit waits for its WAL flush; logical
   * decoding enabled; replication over 127.0.0.1 trusted.
   */
  async startPostgres() {
    const { H } = this;
    const pgBin = H.PG_BIN_DIR;
    const dir = H.tempDir('bench-writers-pg-');
    const dataDir = path.join(dir, 'data');
    const user = postgresUser();
    if (user.uid !== undefined) chownSync(dir, user.uid, user.gid);
    const pgEnv = H.cleanEnv({ LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' });
    const initdb = H.spawnCaptured(path.join(pgBin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8'],
      { name: 'initdb', env: pgEnv, cwd: dir, ...user });
    const r = await H.withTimeout(initdb.exited, 120000, 'initdb');
    if (r.code !== 0) throw new Error(`initdb failed:\n${initdb.output()}`);
    appendFileSync(path.join(dataDir, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n');
    this.pgPort = await H.freePort();
    this.pgSettings = {
      listen_addresses: '127.0.0.1', port: String(this.pgPort), unix_socket_directories: '',
      fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on',
      wal_level: 'logical', max_wal_senders: '10', max_replication_slots: '10',
      max_connections: '50', shared_buffers: '128MB', log_min_messages: 'warning',
    };
    const args = ['-D', dataDir];
    for (const [k, v] of Object.entries(this.pgSettings)) args.push('-c', `${k}=${v}`);
    this.pgProc = H.spawnCaptured(path.join(pgBin, 'postgres'), args,
      { name: 'postgres', env: pgEnv, cwd: dir, emergencySignal: 'SIGQUIT', ...user });
    this.pgUrl = `postgresql://postgres@127.0.0.1:${this.pgPort}/postgres`;
    await H.waitForPostgres(this.pgProc, this.pgUrl, 60000);
    this.pool = new this.pg.Pool({ connectionString: this.pgUrl, max: 3, application_name: 'bench-writers' });
    this.pool.on('error', () => {});
    this.info.pgVersion = (await this.q('SHOW server_version')).rows[0].server_version;
    log(`PostgreSQL ${this.info.pgVersion} on 127.0.0.1:${this.pgPort} (${dir})`);
  }

  q(sql, params) {
    return this.pool.query(sql, params);
  }

  async installSchema() {
    const { H } = this;
    const psql = H.spawnCaptured(path.join(H.PG_BIN_DIR, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', H.SQL_FILE, this.pgUrl],
      { name: 'psql', env: H.cleanEnv() });
    const r = await H.withTimeout(psql.exited, 60000, 'psql -f sql/cache_invalidation.sql');
    if (r.code !== 0) throw new Error(`installing sql/cache_invalidation.sql failed:\n${psql.output()}`);
    log('creating the tables (100k rows; 50 × 1 MiB TOASTed rows)');
    await this.q(`CREATE TABLE bench_rows (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, t timestamptz)
                  WITH (autovacuum_enabled = false)`);
    await this.q(`INSERT INTO bench_rows (id) SELECT g FROM generate_series(1, ${ROWS}) g`);
    // STORAGE EXTERNAL: out of line and uncompressed, so each row really carries ~1 MiB of TOAST.
    await this.q(`CREATE TABLE bench_wide (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, t timestamptz, body text NOT NULL)
                  WITH (autovacuum_enabled = false)`);
    await this.q('ALTER TABLE bench_wide ALTER COLUMN body SET STORAGE EXTERNAL');
    await this.q(`INSERT INTO bench_wide (id, body)
                  SELECT i, (SELECT string_agg(md5(i::text || ':' || g::text), '') FROM generate_series(1, ${WIDE_BYTES / 32}) g)
                  FROM generate_series(1, ${WIDE_ROWS}) i`);
    this.walinspect = await this.q('CREATE EXTENSION IF NOT EXISTS pg_walinspect').then(() => true, (err) => {
      log(`pg_walinspect unavailable (${err.message}): WAL bytes include full-page images`);
      return false;
    });
    await this.q(`CREATE FUNCTION bench_bare_notify() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN PERFORM pg_notify('bench', NEW.id::text); RETURN NULL; END $$`);
    await this.q('VACUUM ANALYZE bench_rows');
    await this.q('VACUUM ANALYZE bench_wide');
    const toast = (await this.q(`SELECT pg_size_pretty(pg_total_relation_size('bench_wide')) AS s,
                                        (SELECT avg(pg_column_size(body))::bigint FROM bench_wide) AS b`)).rows[0];
    this.info.wide = `${toast.s} in all, ${toast.b} bytes per body`;
  }

  async usePin(pin) {
    this.pin = pin;
    const pgCpus = pin === 'pinned' ? CPU_PG : CPU_ALL;
    const restCpus = pin === 'pinned' ? CPU_REST : CPU_ALL;
    // New backends fork from the postmaster and inherit its affinity.
    setAffinity(this.pgProc.pid, pgCpus);
    for (const c of childPids(this.pgProc.pid)) setAffinity(c, pgCpus);
    for (const pid of [process.pid, this.soketi.proc.pid, ...childPids(this.soketi.proc.pid), this.sub.pid, this.ceilingGen.pid]) {
      setAffinity(pid, restCpus);
    }
    log(`${pin}: PostgreSQL and pgbench on CPU ${pgCpus}, the rest on CPU ${restCpus}`);
  }

  get pgCpus() { return this.pin === 'pinned' ? CPU_PG : CPU_ALL; }
  get restCpus() { return this.pin === 'pinned' ? CPU_REST : CPU_ALL; }

  // --- state between cells -------------------------------------------------------------

  async stopConsumers() {
    if (this.bridge) {
      await this.bridge.stop();
      this.bridge = null;
    }
    if (this.recv) {
      await this.recv.stop({ signal: 'SIGTERM', killAfterMs: 5000 });
      this.recv = null;
    }
  }

  async reset() {
    await this.stopConsumers();
    for (const t of ['bench_rows', 'bench_wide']) {
      await this.q(`DROP TRIGGER IF EXISTS bench_bare ON ${t}`);
      await this.q('SELECT cache_invalidation_detach($1)', [t]).catch(() => {});
    }
    // Leave the tables in no publication (the wal attach, or our own CREATE PUBLICATION).
    const pubs = await this.q(`SELECT pubname, tablename FROM pg_publication_tables
                                WHERE schemaname = 'public' AND tablename IN ('bench_rows', 'bench_wide')`);
    for (const p of pubs.rows) {
      await this.q(`ALTER PUBLICATION ${quoteIdent(p.pubname)} DROP TABLE ${p.tablename}`).catch((err) => {
        log(`warning: could not take ${p.tablename} out of publication ${p.pubname}: ${err.message}`);
      });
    }
    // A leftover slot retains WAL: drop every one (this cluster is ours alone).
    const deadline = Date.now() + 15000;
    for (;;) {
      const slots = (await this.q('SELECT slot_name, active_pid FROM pg_replication_slots')).rows;
      if (!slots.length) break;
      for (const s of slots) {
        if (s.active_pid && Date.now() > deadline - 10000) await this.q('SELECT pg_terminate_backend($1)', [s.active_pid]).catch(() => {});
        if (!s.active_pid) await this.q('SELECT pg_drop_replication_slot($1)', [s.slot_name]).catch(() => {});
      }
      if (Date.now() > deadline) throw new Error(`replication slots still there: ${slots.map((s) => s.slot_name).join(', ')}`);
      await sleep(200);
    }
    // The store, the bridge's stamps and cursor start empty in every cell (not the registry of
    // attached tables, which detach keeps).
    const store = (await this.q(`SELECT string_agg(quote_ident(tablename), ', ') AS t FROM pg_tables
                                  WHERE schemaname = 'public'
                                    AND (tablename IN ('cache_invalidated_at', 'cache_invalidation_log') OR tablename LIKE 'cache\\_bridge\\_%')`)).rows[0].t;
    if (store) await this.q(`TRUNCATE ${store}`);
    await this.q('VACUUM bench_rows');
    await this.q('VACUUM bench_wide');
    await this.q('CHECKPOINT');
  }

  // --- the consumers -------------------------------------------------------------------

  bridgeEnv(extra = {}) {
    return {
      DATABASE_URL: this.pgUrl, SOKETI_APP_ID: this.soketi.appId, SOKETI_APP_KEY: this.soketi.key,
      SOKETI_APP_SECRET: this.soketi.secret, SOKETI_HOST: '127.0.0.1', SOKETI_PORT: this.soketi.port,
      SOKETI_WEBHOOK_URL: this.webhookUrl, BRIDGE_HTTP_BIND: '127.0.0.1', BRIDGE_CHANNEL: CHANNEL,
      BRIDGE_LOG_FORMAT: 'text', ...extra,
    };
  }

  /** Starts the bridge; throws {na} when it cannot run this source. */
  async startBridge(extra, { ready }) {
    const b = await this.H.startBridge({ env: this.bridgeEnv(extra), ready, readyTimeoutMs: 30000, name: 'cache-bridge' })
      .catch((err) => {
        const text = String(err.message ?? err);
        const line = text.split('\n').find((l) => /BRIDGE_|error|fatal/i.test(l) && !/^waitUntil/.test(l)) ?? text.split('\n')[0];
        throw Object.assign(new Error(text), { na: `bridge did not start: ${line.trim().slice(0, 160)}` });
      });
    setAffinity(b.pid, this.restCpus);
    this.bridge = b;
    return b;
  }

  async waitSlotActive(slot, ms) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const r = await this.q('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      if (r.rows[0]?.active) return true;
      if (this.bridge && !this.bridge.running()) return false;
      if (this.recv && !this.recv.running()) return false;
      await sleep(100);
    }
    return false;
  }

  /** Puts `table` into publication cache_invalidation: attach(...,'wal') if the SQL has it. */
  async publish(table) {
    try {
      await this.q("SELECT cache_invalidation_attach($1, 'id', 'wal')", [table]);
      const inPub = await this.q('SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2', [PUBLICATION, table]);
      if (inPub.rowCount) return 'attach';
      log(`warning: cache_invalidation_attach(${table}, 'id', 'wal') left ${table} out of publication ${PUBLICATION}; adding it`);
    } catch (err) {
      this.info.walAttach = `cache_invalidation_attach(..., 'wal') failed: ${err.message}`;
    }
    const exists = await this.q('SELECT 1 FROM pg_publication WHERE pubname = $1', [PUBLICATION]);
    if (exists.rowCount) await this.q(`ALTER PUBLICATION ${PUBLICATION} ADD TABLE ${table}`);
    else await this.q(`CREATE PUBLICATION ${PUBLICATION} FOR TABLE ${table}`);
    return 'create publication';
  }

  async setup(w, column) {
    const t = w.table;
    if (column === 'bare') {
      await this.q(`CREATE TRIGGER bench_bare AFTER UPDATE ON ${t} FOR EACH ROW EXECUTE FUNCTION bench_bare_notify()`);
    } else if (column === 'lean' || column === 'lean-nobridge') {
      await this.q("SELECT cache_invalidation_attach($1, 'id')", [t]);
      if (column === 'lean') await this.startBridge({}, { ready: 'readyz' });
    } else if (column === 'recvlogical') {
      this.info.recvPublication = await this.publish(t);
      const slot = `bench_recv_${++this.slotSeq}`;
      const bin = path.join(this.H.PG_BIN_DIR, 'pg_recvlogical');
      const conn = ['-d', this.pgUrl, '-S', slot];
      const create = this.H.spawnCaptured(bin, [...conn, '--create-slot', '-P', 'pgoutput'], { name: 'pg_recvlogical-create', env: this.H.cleanEnv() });
      const c = await this.H.withTimeout(create.exited, 30000, 'pg_recvlogical --create-slot');
      if (c.code !== 0) throw Object.assign(new Error(create.output()), { na: `pg_recvlogical --create-slot failed: ${create.text().split('\n')[0]}` });
      this.recv = this.H.spawnCaptured('taskset', ['-c', this.restCpus, bin, ...conn, '--start', '-f', '/dev/null',
        '-o', 'proto_version=1', '-o', `publication_names=${PUBLICATION}`], { name: 'pg_recvlogical', env: this.H.cleanEnv() });
      if (!(await this.waitSlotActive(slot, 15000))) {
        throw Object.assign(new Error(this.recv.output()), { na: `pg_recvlogical did not start: ${this.recv.text().split('\n')[0]}` });
      }
    } else if (column === 'wal') {
      try {
        await this.q("SELECT cache_invalidation_attach($1, 'id', 'wal')", [t]);
      } catch (err) {
        throw Object.assign(err, { na: `no wal source: attach 'wal' failed: ${err.message.slice(0, 120)}` });
      }
      const slot = `bench_wal_${++this.slotSeq}`;
      const env = { BRIDGE_SOURCE: 'wal', BRIDGE_SLOT: slot, BRIDGE_PUBLICATION: PUBLICATION };
      let b;
      try {
        b = await this.startBridge(env, { ready: 'healthz' });
      } catch (err) {
        // A bridge that wants the slot made beforehand: make it and try once more.
        if (!/slot/i.test(err.message) || !/not exist|missing|no such/i.test(err.message)) throw err;
        await this.q("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
        b = await this.startBridge(env, { ready: 'healthz' });
      }
      if (!(await this.waitSlotActive(slot, 20000))) {
        const out = b.running() ? 'running, but reads no slot (BRIDGE_SOURCE ignored?)' : `exited: ${b.text().split('\n').slice(-1)[0]}`;
        throw Object.assign(new Error(b.output()), { na: `no wal source: bridge ${out}` });
      }
      // Once the slot is read, give the bridge its readiness (or 5 s) before the clock starts.
      await this.H.waitUntil(async () => (await this.H.http(`${b.opsUrl}/readyz`, { timeoutMs: 1000 })).status === 200, 5000)
        .catch(() => log('warning: wal bridge not ready after 5 s; measuring anyway'));
    }
    if (this.bridge) await settle(this.bridge.pid, 3000);
  }

  // --- one cell ------------------------------------------------------------------------

  async cell(w, column, run, pin) {
    const base = { workload: w.id, column, run, pin };
    try {
      await this.reset();
      await this.setup(w, column);
    } catch (err) {
      await this.stopConsumers().catch(() => {});
      if (!err.na) log(`${w.id} ${column}: setup failed: ${err.stack || err}`);
      return { ...base, na: err.na ?? `setup failed: ${String(err.message).split('\n')[0].slice(0, 160)}` };
    }
    try {
      return { ...base, ...(await this.measure(w, column)) };
    } catch (err) {
      log(`${w.id} ${column}: ${err.stack || err}`);
      return { ...base, na: `failed: ${String(err.message).split('\n')[0].slice(0, 160)}` };
    } finally {
      await this.stopConsumers().catch(() => {});
    }
  }

  async measure(w, column) {
    const { H, opts } = this;
    const withBridge = BRIDGE_COLUMNS.has(column);
    const before = (await this.q(`SELECT pg_current_wal_flush_lsn()::text AS lsn, clock_timestamp()::text AS at,
                                         (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()) AS deadlocks`)).rows[0];
    if (withBridge) await this.sub.call('start', { prefix: `${w.table}:`, size: w.table === 'bench_wide' ? WIDE_ROWS : ROWS });
    const bridgeCpu0 = withBridge ? cpuSeconds(this.bridge.pid) : null;
    const pgbenchArgs = ['-c', this.pgCpus, path.join(H.PG_BIN_DIR, 'pgbench'), '-n', '-M', 'prepared',
      '-T', String(opts.seconds), '-c', String(w.clients), '-j', String(w.clients),
      '-f', path.join(this.scriptDir, `${w.id}.sql`), `--random-seed=${opts.seed}`, '--failures-detailed',
      '-h', '127.0.0.1', '-p', String(this.pgPort), '-U', 'postgres', 'postgres'];
    const startedAt = Date.now();
    const pgb = H.spawnCaptured('taskset', pgbenchArgs, { name: 'pgbench', env: H.cleanEnv() });
    const res = await H.withTimeout(pgb.exited, opts.seconds * 1000 + 60000, 'pgbench').catch(async (err) => {
      await pgb.stop({ signal: 'SIGKILL' });
      throw err;
    });
    const endedAt = Date.now();
    const out = pgb.text();
    if (withBridge) await this.sub.call('mark', {});
    const parsed = parsePgbench(out);
    if (res.code !== 0 || parsed.tps === null) throw new Error(`pgbench exited ${res.code}:\n${out}`);
    const r = {
      tps: parsed.tps, transactions: parsed.transactions, failed: parsed.failed, deadlockFailures: parsed.deadlockFailures,
      aborted: /aborted/.test(out) ? (out.match(/^.*aborted.*$/m)?.[0] ?? 'aborted') : null,
      rows: parsed.transactions * w.rowsPerTx, seconds: (endedAt - startedAt) / 1000,
    };
    if (withBridge) {
      const changed = await this.q(`SELECT id, (extract(epoch FROM t) * 1000000)::float8 AS us FROM ${w.table}
                                     WHERE t >= $1::timestamptz`, [before.at]);
      const ids = changed.rows.map((x) => Number(x.id));
      const us = changed.rows.map((x) => Number(x.us));
      await this.sub.call('expect', { ids, us }, 60000);
      r.delivery = await this.waitDelivered(ids.length, endedAt,
        Math.min(opts.tailMaxMs, opts.tailBaseMs + r.rows * opts.tailPerRowMs));
      r.delivery.writeSeconds = r.seconds;
      r.bridgeCpuPct = (100 * (cpuSeconds(this.bridge.pid) - bridgeCpu0)) / ((Date.now() - startedAt) / 1000);
      r.bridgeAlive = this.bridge.running();
    }
    const after = (await this.q(`SELECT pg_current_wal_flush_lsn()::text AS lsn, pg_wal_lsn_diff(pg_current_wal_flush_lsn(), $1)::float8 AS wal,
                                        (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()) AS deadlocks`,
    [before.lsn])).rows[0];
    r.walBytes = Number(after.wal);
    // Split into records and full-page images: the first change of a page after the cell's
    // CHECKPOINT logs the whole page, so FPI bytes per row depend on how many rows a cell changed.
    if (this.walinspect) {
      const w = (await this.q(`SELECT sum(record_size)::float8 AS rec, sum(fpi_size)::float8 AS fpi
                                 FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, false)`, [before.lsn, after.lsn])).rows[0];
      r.walRecordBytes = Number(w.rec ?? 0);
      r.walFpiBytes = Number(w.fpi ?? 0);
    }
    r.walPerRow = r.rows > 0 ? (r.walRecordBytes ?? r.walBytes) / r.rows : null;
    r.walFpiPerRow = r.rows > 0 && r.walFpiBytes !== undefined ? r.walFpiBytes / r.rows : null;
    r.deadlocks = Number(after.deadlocks) - Number(before.deadlocks);
    return r;
  }

  /** Until every changed key's last change arrived, nothing new came for tailIdleMs, or capMs passed. */
  async waitDelivered(expected, endedAt, capMs) {
    const { opts } = this;
    const deadline = endedAt + capMs;
    let last = -1, progressAt = Date.now(), st;
    for (;;) {
      st = await this.sub.call('status');
      if (st.final >= expected) break;
      if (st.events !== last) {
        last = st.events;
        progressAt = Date.now();
      }
      if (Date.now() - progressAt > opts.tailIdleMs || Date.now() > deadline) break;
      await sleep(200);
    }
    return { expected, delivered: st.delivered, final: st.final, events: st.events, replays: st.replays,
      eventsDuringWrites: st.eventsAtMark, complete: st.final >= expected,
      tailMs: Math.max(0, (st.final >= expected ? st.finalAt : st.last) - endedAt), capMs };
  }

  /** Soketi's intake: pre-signed /batch_events straight to it, 16 in flight (scripts/bench's ceiling). */
  async ceiling(run, pin) {
    const durationMs = Math.min(3, this.opts.seconds) * 1000;
    await this.sub.call('start', { prefix: 'ceiling:', size: 1 });
    await this.ceilingGen.call('prepare', { port: this.soketi.port, appId: this.soketi.appId, key: this.soketi.key,
      secret: this.soketi.secret, channel: CHANNEL, table: 'ceiling', batchSize: 10,
      maxEvents: Math.ceil((60000 * durationMs) / 1000) }, 120000);
    const r = await this.ceilingGen.call('run', { durationMs, inFlight: 16 }, durationMs + 60000);
    await sleep(1000);
    const st = await this.sub.call('status');
    const span = (r.lastCommit - r.firstStart) / 1000;
    return { run, pin, accepted: r.committed, errors: r.errors, perSec: span > 0 ? r.committed / span : null, received: st.events };
  }
}

function quoteIdent(s) {
  return `"${String(s).replace(/"/g, '""')}"`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function cpuSeconds(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Until pid uses < 1 clock tick per 300 ms (done starting up), at most maxMs. */
async function settle(pid, maxMs) {
  const deadline = Date.now() + maxMs;
  let prev = cpuSeconds(pid);
  while (Date.now() < deadline) {
    await sleep(300);
    const cur = cpuSeconds(pid);
    if (!Number.isFinite(cur) || cur - prev <= 0.011) return;
    prev = cur;
  }
}

function postgresUser() {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

function parsePgbench(out) {
  const num = (re) => {
    const m = out.match(re);
    return m ? Number(m[1]) : null;
  };
  return {
    tps: num(/^tps = ([0-9.]+)/m),
    transactions: num(/^number of transactions actually processed: (\d+)/m) ?? 0,
    failed: num(/^number of failed transactions: (\d+)/m) ?? 0,
    deadlockFailures: num(/^number of deadlock failures: (\d+)/m) ?? 0,
  };
}

// ---------------------------------------------------------------------------------------
// The subscriber (this file, forked): one pusher-js client on CHANNEL; per key of the cell's
// table, the largest seq received; which changed keys it has seen, and which it has seen
// with a seq at or after the key's last change (t, taken before that change's commit).

function forkSubscriber() {
  const child = fork(fileURLToPath(import.meta.url), ['--subscriber-worker'], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const tail = [];
  for (const s of [child.stdout, child.stderr]) {
    s.setEncoding('utf8');
    s.on('data', (c) => {
      tail.push(c);
      if (tail.length > 50) tail.shift();
      if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[subscriber] ${c}`);
    });
  }
  let next = 1, exited = false;
  const pending = new Map();
  const exit = new Promise((resolve) => child.on('exit', () => {
    exited = true;
    for (const p of pending.values()) p.reject(new Error(`subscriber exited:\n${tail.join('')}`));
    pending.clear();
    resolve();
  }));
  child.on('message', (m) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.error) p.reject(new Error(`subscriber: ${m.error}`));
    else p.resolve(m.result);
  });
  return {
    pid: child.pid,
    call(type, payload = {}, timeoutMs = 30000) {
      if (exited) return Promise.reject(new Error(`subscriber is not running:\n${tail.join('')}`));
      const id = next++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`subscriber: ${type} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        child.send({ id, type, payload });
      });
    },
    async stop() {
      if (exited) return;
      try { child.disconnect(); } catch { /* gone */ }
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    },
  };
}

function subscriberWorker() {
  const Pusher = requireScripts('pusher-js');
  let pusher = null;
  let s = null; // the current cell
  const fresh = (prefix, size) => ({ prefix, maxSeq: new Float64Array(size + 1), want: null, events: 0, replays: 0,
    delivered: 0, final: 0, finalAt: 0, first: 0, last: 0, eventsAtMark: null });
  const onEvent = (event, data) => {
    if (!s || event !== 'cache-invalidate' || typeof data?.cacheKey !== 'string' || !data.cacheKey.startsWith(s.prefix)) return;
    if (data.replay === true) {
      s.replays++;
      return;
    }
    const now = Date.now();
    s.events++;
    s.first ||= now;
    s.last = now;
    const id = Number(data.cacheKey.slice(s.prefix.length));
    if (!Number.isInteger(id) || id < 0 || id >= s.maxSeq.length) return;
    // No seq (an older event shape): count the key as seen, as of now.
    const seq = Number.isFinite(data.seq) ? data.seq : now * 1000;
    const prev = s.maxSeq[id];
    if (seq > prev) s.maxSeq[id] = seq;
    if (s.want) account(id, prev, now);
  };
  const account = (id, prev, now) => {
    const want = s.want[id];
    if (!want) return;
    if (prev === 0) s.delivered++;
    if (s.maxSeq[id] >= want && !(prev >= want)) {
      s.final++;
      s.finalAt = now;
    }
  };
  const handlers = {
    async connect({ port, key, channel }) {
      pusher = new Pusher(key, { wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
        cluster: 'mt1', disableStats: true });
      const ch = pusher.subscribe(channel);
      ch.bind_global(onEvent);
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('subscription timed out')), 20000);
        ch.bind('pusher:subscription_succeeded', () => { clearTimeout(timer); resolve(); });
        ch.bind('pusher:subscription_error', (e) => { clearTimeout(timer); reject(new Error(`subscription_error ${JSON.stringify(e)}`)); });
      });
      return true;
    },
    start({ prefix, size }) {
      s = fresh(prefix, size);
      return true;
    },
    mark() {
      if (s) s.eventsAtMark = s.events;
      return true;
    },
    expect({ ids, us }) {
      s.want = new Float64Array(s.maxSeq.length);
      for (let i = 0; i < ids.length; i++) if (ids[i] < s.want.length) s.want[ids[i]] = us[i];
      const now = Date.now();
      for (let id = 0; id < s.maxSeq.length; id++) {
        if (!s.want[id] || !s.maxSeq[id]) continue;
        s.delivered++;
        if (s.maxSeq[id] >= s.want[id]) {
          s.final++;
          s.finalAt = Math.max(s.finalAt, s.last);
        }
      }
      void now;
      return true;
    },
    status() {
      return { events: s?.events ?? 0, replays: s?.replays ?? 0, delivered: s?.delivered ?? 0, final: s?.final ?? 0,
        finalAt: s?.finalAt ?? 0, first: s?.first ?? 0, last: s?.last ?? 0, eventsAtMark: s?.eventsAtMark ?? null };
    },
  };
  process.on('message', async (m) => {
    try {
      const h = handlers[m.type];
      if (!h) throw new Error(`unknown request ${m.type}`);
      process.send({ id: m.id, result: await h(m.payload) });
    } catch (err) {
      process.send({ id: m.id, error: err?.stack || String(err) });
    }
  });
  process.on('disconnect', () => {
    try { pusher?.disconnect(); } catch { /* gone */ }
    process.exit(0);
  });
}

// ---------------------------------------------------------------------------------------
// The report

function fmt(x, digits = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

function range(xs, f) {
  if (!xs.length) return '—';
  const lo = Math.min(...xs), hi = Math.max(...xs);
  return lo === hi || f(lo) === f(hi) ? f(lo) : `${f(lo)}–${f(hi)}`;
}

const pct = (x) => `${Math.round(x * 100)}%`;

function renderReport({ opts, results, ceilings, startedAt, finishedAt, machine, info }) {
  const L = [];
  const cellsOf = (pin, w, col) => results.filter((r) => r.pin === pin && r.workload === w && r.column === col);
  const ok = (cs) => cs.filter((c) => !c.na);
  const naReason = (cs) => cs.find((c) => c.na)?.na;
  const ratiosOf = (pin, w, num, den) => {
    const out = [];
    for (let run = 0; run < opts.runs; run++) {
      const a = results.find((r) => r.pin === pin && r.workload === w && r.column === num && r.run === run && !r.na);
      const b = results.find((r) => r.pin === pin && r.workload === w && r.column === den && r.run === run && !r.na);
      if (a && b && b.tps > 0) out.push(a.tps / b.tps);
    }
    return out;
  };
  const notes = [];
  L.push(`## Writers (issue 9): pgbench tx/s by invalidation method`);
  L.push('');
  L.push(`\`${['scripts/bench-writers', ...process.argv.slice(2).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out')].join(' ')}\`` +
    ` — ${startedAt.toISOString().slice(0, 16).replace('T', ' ')}–${finishedAt.toISOString().slice(11, 16)} UTC, ` +
    `${machine.cores} cores (${machine.model}), load average ${machine.loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ` +
    `${machine.loadAfter.map((x) => x.toFixed(2)).join(' ')} after. PostgreSQL ${info.pgVersion ?? '?'} with fsync, ` +
    `synchronous_commit and full_page_writes on (a commit waits for its WAL flush, as in a deployment), wal_level=logical; ` +
    `pgbench -M prepared -T ${opts.seconds} --random-seed=${opts.seed}, ${opts.runs} run${opts.runs > 1 ? 's' : ''} ` +
    `(tx/s: mean of the runs; ratios: within each run, lowest–highest). Table of ${ROWS.toLocaleString('en-US')} rows; ` +
    `wide table: ${info.wide ?? '?'}. Bridge (lean, wal) with its defaults, publishing to a real Soketi ` +
    `(batch 10) with one pusher-js subscriber. *pinned*: PostgreSQL and pgbench on CPU 0, bridge, Soketi, subscriber and ` +
    `pg_recvlogical on CPU 1; *unpinned*: all on both.`);
  L.push('');
  for (const pin of opts.pins) {
    L.push(`### ${pin}`);
    L.push('');
    L.push(`| workload | clients | ${opts.columns.join(' | ')} | lean/none | lean/bare | wal/recvlogical | wal/none |`);
    L.push(`|---|--:|${opts.columns.map(() => '--:').join('|')}|--:|--:|--:|--:|`);
    for (const w of opts.workloads) {
      const cells = opts.columns.map((col) => {
        const cs = cellsOf(pin, w.id, col);
        const good = ok(cs);
        if (!good.length) {
          const why = naReason(cs);
          if (why && !notes.includes(`${col}: ${why}`)) notes.push(`${col}: ${why}`);
          return why?.startsWith('no wal source') ? 'n/a (no wal source)' : 'n/a';
        }
        return fmt(mean(good.map((c) => c.tps)));
      });
      const ratio = (a, b) => range(ratiosOf(pin, w.id, a, b), pct);
      L.push(`| ${w.label} | ${w.clients} | ${cells.join(' | ')} | ${ratio('lean', 'none')} | ${ratio('lean', 'bare')} | ` +
        `${ratio('wal', 'recvlogical')} | ${ratio('wal', 'none')} |`);
    }
    L.push('');
    L.push(`WAL bytes per changed row, deadlocks, and delivery (${pin}):`);
    L.push('');
    L.push(`| workload | clients | ${opts.columns.map((c) => `WAL B/row ${c}`).join(' | ')} | deadlocks (failed tx) | ` +
      `${opts.columns.filter((c) => BRIDGE_COLUMNS.has(c)).map((c) => `${c}: keys delivered / changed, last change delivered, events, tail`).join(' | ')} |`);
    L.push(`|---|--:|${opts.columns.map(() => '--:').join('|')}|--:|${opts.columns.filter((c) => BRIDGE_COLUMNS.has(c)).map(() => '---').join('|')}|`);
    for (const w of opts.workloads) {
      const wal = opts.columns.map((col) => {
        const good = ok(cellsOf(pin, w.id, col));
        if (!good.length) return 'n/a';
        const fpi = good.every((c) => Number.isFinite(c.walFpiPerRow)) ? ` (+${fmt(mean(good.map((c) => c.walFpiPerRow)))})` : '';
        return `${fmt(mean(good.map((c) => c.walPerRow)))}${fpi}`;
      });
      const all = opts.columns.flatMap((col) => ok(cellsOf(pin, w.id, col)));
      const dl = all.reduce((a, c) => a + c.deadlocks, 0);
      const failed = all.reduce((a, c) => a + c.failed, 0);
      const deliv = opts.columns.filter((c) => BRIDGE_COLUMNS.has(c)).map((col) => {
        const good = ok(cellsOf(pin, w.id, col));
        if (!good.length) return 'n/a';
        return good.map((c) => {
          const d = c.delivery;
          return `${fmt(d.delivered)} / ${fmt(d.expected)}, ${d.complete ? 'all' : `**${fmt(d.expected - d.final)} missing**`}, ` +
            `${fmt(d.events)} ev, ${(d.tailMs / 1000).toFixed(1)} s${c.bridgeAlive === false ? ', **bridge exited**' : ''}`;
        }).join('; ');
      });
      L.push(`| ${w.label} | ${w.clients} | ${wal.join(' | ')} | ${dl} (${failed}) | ${deliv.join(' | ')} |`);
    }
    L.push('');
  }

  // Saturation: the wal bridge at 100-row statements, 4 clients, against Soketi's intake in the same run.
  const sat = [];
  const satChecks = [];
  for (const pin of opts.pins) {
    const intake = ceilings.filter((c) => c.pin === pin && Number.isFinite(c.perSec));
    for (const col of ['wal', 'lean'].filter((c) => opts.columns.includes(c))) {
      const cs = ok(cellsOf(pin, 'rows100-4', col));
      if (!cs.length) {
        if (opts.workloads.some((w) => w.id === 'rows100-4')) sat.push(`| ${pin} | ${col} | n/a | n/a | ${fmt(mean(intake.map((c) => c.perSec)))} | — | — |`);
        continue;
      }
      const perRun = cs.map((c) => {
        const k = intake.find((x) => x.run === c.run);
        const during = c.delivery.eventsDuringWrites / c.delivery.writeSeconds;
        return { rowsPerSec: c.rows / c.seconds, during, intake: k?.perSec ?? null, complete: c.delivery.complete };
      });
      const ratios = perRun.filter((p) => p.intake).map((p) => p.during / p.intake);
      if (col === 'wal') satChecks.push({ pin, ratios, complete: perRun.every((p) => p.complete) });
      sat.push(`| ${pin} | ${col} | ${fmt(mean(perRun.map((p) => p.rowsPerSec)))} | ${fmt(mean(perRun.map((p) => p.during)))} | ` +
        `${fmt(mean(perRun.map((p) => p.intake).filter(Number.isFinite)))} | ${range(ratios, pct)} | ${perRun.every((p) => p.complete) ? 'yes' : '**no**'} |`);
    }
  }
  if (sat.length) {
    L.push('### Saturation (100-row statements, 4 clients)');
    L.push('');
    L.push('Delivered/s: events the subscriber received while the writers ran, per second; Soketi intake: events/s Soketi ' +
      'accepted from pre-signed `/batch_events` (16 in flight, batch 10, no writers; scripts/bench\'s ceiling) in the same run. ' +
      'A bridge that keeps up delivers at most the writers\' rate of distinct keys per coalescing window, so below the intake the ratio says how fast the writers were, not how slow the bridge was.');
    L.push('');
    L.push('| | source | changed rows/s | delivered/s | Soketi intake/s | delivered / intake | every change delivered |');
    L.push('|---|---|--:|--:|--:|--:|---|');
    L.push(...sat);
    L.push('');
  }

  // Targets.
  const checks = [];
  const target = (name, okv, detail) => checks.push(`- ${okv === null ? 'n/a' : okv ? 'PASS' : '**MISS**'}: ${name}${detail ? ` (${detail})` : ''}`);
  for (const pin of opts.pins) {
    const per = (num, den, ws) => ws.flatMap((w) => ratiosOf(pin, w.id, num, den).map((x) => ({ w, x })));
    const check = (name, xs, limit) => target(`${pin}: ${name}`, xs.length ? xs.every((p) => p.x >= limit) : null,
      xs.length ? `lowest ${pct(Math.min(...xs.map((p) => p.x)))}, ${xs.reduce((a, p) => (p.x < a.x ? p : a)).w.id}` : 'not measured');
    check('wal ≥ 95% of recvlogical in every row', per('wal', 'recvlogical', opts.workloads), 0.95);
    check('lean ≥ 70% of none on 100-row statements', per('lean', 'none', opts.workloads.filter((w) => w.rowsPerTx === 100)), 0.70);
    check('lean ≥ 95% of bare on single-row transactions', per('lean', 'bare', opts.workloads.filter((w) => w.id.startsWith('single') || w.id.startsWith('hot'))), 0.95);
    check('lean within 10% of bare on TOASTed rows', per('lean', 'bare', opts.workloads.filter((w) => w.table === 'bench_wide')), 0.90);
  }
  for (const pin of opts.pins) {
    const c = satChecks.find((x) => x.pin === pin);
    target(`${pin}: wal at saturation delivers ≥ 90% of Soketi's intake, every change delivered`,
      c && c.ratios.length ? c.complete && c.ratios.every((x) => x >= 0.9) : null,
      c && c.ratios.length ? `${range(c.ratios, pct)}${c.complete ? '' : ', not every change delivered'}` : 'not measured');
  }
  const measured = results.filter((r) => !r.na);
  const dl = measured.reduce((a, c) => a + Math.max(c.deadlocks, c.deadlockFailures), 0);
  target('0 deadlocks in the bench', measured.length ? dl === 0 : null, `${dl} in ${measured.length} cells`);
  const bridgeCells = measured.filter((r) => r.delivery);
  const incomplete = bridgeCells.filter((r) => !r.delivery.complete);
  target('every change delivered (the last change of every changed key reached the subscriber)', bridgeCells.length ? incomplete.length === 0 : null,
    incomplete.length ? incomplete.map((r) => `${r.pin} ${r.workload} ${r.column}: ${r.delivery.expected - r.delivery.final} keys`).join('; ') : `${bridgeCells.length} cells`);
  L.push('### Targets');
  L.push('');
  L.push(...checks);
  L.push('');
  if (notes.length || info.walAttach) {
    L.push('Notes:');
    L.push('');
    for (const n of notes) L.push(`- ${n}`);
    if (info.walAttach) L.push(`- recvlogical cells: ${info.walAttach}; the table went into publication ${PUBLICATION} by CREATE PUBLICATION instead.`);
    L.push('');
  }
  L.push('"last change delivered": for every changed key the subscriber saw an event whose `seq` (the bridge\'s receipt stamp) ' +
    'is not older than the row\'s last `t = clock_timestamp()`, taken before that change committed. WAL B/row: ' +
    'WAL written during the cell (from the flush LSN before pgbench to the flush LSN once delivery was checked, so the bridge\'s ' +
    'own stamp writes count) / rows changed, record bytes and, in parentheses, full-page images (pg_walinspect): every cell ' +
    'starts after a CHECKPOINT, so a cell that changed fewer rows logs more page images per row. ' +
    'Deadlocks: `pg_stat_database.deadlocks` difference; failed tx: pgbench\'s count.');
  L.push('');
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------

if (process.argv[2] === '--subscriber-worker') {
  subscriberWorker();
} else {
  main().catch((err) => {
    console.error(`bench-writers: FAILED: ${err.stack || err}`);
    process.exit(1);
  });
}
