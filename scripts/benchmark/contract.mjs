#!/usr/bin/env node
// The timestamp contract's costs (scripts/bench-contract installs, builds, then runs this).
//
//   node scripts/benchmark/contract.mjs [--requests N] [--rounds N] [--before-bin PATH]
//        [--after-bin PATH] [--skip-saturation] [--out PATH]
//
// On 127.0.0.1, against a private PostgreSQL with sql/cache_invalidation.sql and a real Soketi:
//  1. GET /snapshot on a channel of 10,000 stamped keys: latency sequentially and with 4 clients,
//     answer size, CPU per request, and the one query's plan and buffers (EXPLAIN ANALYZE).
//  2. The stamp write-back's cost per change: scripts/bench.mjs's saturation scenario with the
//     bridge from before the change and the current one, alternated (before, after, before,
//     after, ...) so that drift on shared cores shows as drift, not as a difference.
//  3. cache_bridge_stamps_written_total of the bridge of part 1.
// Prints Markdown on stdout, progress on stderr, and writes the Markdown to --out.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { cpuSeconds, treeCpuSeconds } from './proc.mjs';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT_BEFORE_BIN = '/tmp/oldbuild/bridge/cache-bridge';
const CHANNEL = 'invalidations'; // the bridge's default BRIDGE_CHANNEL
const BRIDGE_NAME = 'default'; // the bridge's default BRIDGE_CURSOR_NAME
const KEYS = 10000; // = the default BRIDGE_SNAPSHOT_MAX_KEYS: a full, untruncated answer
const INSERT_STATEMENTS = 4;
const WARMUP_REQUESTS = 10;
const CONCURRENT_CLIENTS = 4;
const MAX_AGE_S = 86400; // the bridge's default BRIDGE_REPLAY_MAX_AGE_S: $3 of the query
const STAMP_WAIT_MS = 60000;
const REQUEST_TIMEOUT_MS = 10000;
const BENCH_RUN_TIMEOUT_MS = 8 * 60000; // one bench.mjs run took ~1.5 min here
// The bridge's snapshot query, verbatim (bridge/invalidation_store.cc).
const SNAPSHOT_SQL = `SELECT cache_key, table_name, seq FROM cache_bridge_stamp
  WHERE bridge_name = $1 AND channel = $2 AND seq > $3 ORDER BY seq DESC LIMIT $4 + 1`;

const log = (msg) => process.stderr.write(`bench-contract: ${msg}\n`);

// ---------------------------------------------------------------------------------------
// Arguments

const USAGE = `usage: scripts/bench-contract [options]
  --requests N        snapshot requests per measurement (default 200, after ${WARMUP_REQUESTS} warm-up ones)
  --rounds N          before/after saturation rounds (default 2)
  --before-bin PATH   the bridge from before the stamp write-back
                      (default ${DEFAULT_BEFORE_BIN}; saturation is skipped if it is missing)
  --after-bin PATH    the current bridge (default build/bridge/cache-bridge)
  --skip-saturation   only the snapshot part (about a minute)
  --out PATH          where the Markdown goes (default .local/bench-contract.md;
                      the raw bench.mjs reports go to a directory beside it)`;

function parseArgs(argv) {
  const opts = {
    requests: 200, rounds: 2, beforeBin: DEFAULT_BEFORE_BIN, beforeBinGiven: false,
    afterBin: path.join(repoRoot, 'build', 'bridge', 'cache-bridge'), skipSaturation: false,
    out: path.join(repoRoot, '.local', 'bench-contract.md'),
  };
  const value = (i) => {
    if (argv[i] === undefined) fail(`${argv[i - 1]} needs a value`);
    return argv[i];
  };
  const count = (i) => {
    const n = Number(value(i));
    if (!Number.isInteger(n) || n < 1) fail(`${argv[i - 1]} needs a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (a === '--requests') opts.requests = count(++i);
    else if (a === '--rounds') opts.rounds = count(++i);
    else if (a === '--before-bin') {
      opts.beforeBin = path.resolve(value(++i));
      opts.beforeBinGiven = true;
    } else if (a === '--after-bin') opts.afterBin = path.resolve(value(++i));
    else if (a === '--skip-saturation') opts.skipSaturation = true;
    else if (a === '--out') opts.out = path.resolve(value(++i));
    else fail(`unknown argument ${a}\n${USAGE}`);
  }
  return opts;
}

function fail(msg) {
  console.error(`bench-contract: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// Small helpers

function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
const fmt = (n, digits = 1) => (n == null || !Number.isFinite(n) ? '—' : n.toFixed(digits));
const fmtInt = (n) => (n == null || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US'));
const fmtRatio = (x) => (x == null || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`);

/** One counter from the bridge's Prometheus text (summed over labels), or NaN. */
async function bridgeMetric(http, baseUrl, name) {
  const text = (await http(`${baseUrl}/metrics`, { timeoutMs: 3000 })).text;
  let sum = NaN;
  for (const line of text.split('\n')) {
    const m = line.match(/^(\w+)(\{[^}]*\})?\s+([0-9.e+-]+)$/);
    if (m && m[1] === name) sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[3]);
  }
  return sum;
}

// ---------------------------------------------------------------------------------------
// Part 1: GET /snapshot on 10,000 keys

/** Inserts KEYS rows into a table with the trigger; resolves once the bridge stamped them all. */
async function loadStampedKeys(h, pg) {
  await pg.query('CREATE TABLE bench_snapshot (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0)');
  await pg.query("SELECT cache_invalidation_attach('bench_snapshot', 'id')");
  const perStatement = KEYS / INSERT_STATEMENTS;
  for (let s = 0; s < INSERT_STATEMENTS; s++) {
    await pg.query('INSERT INTO bench_snapshot (id) SELECT g FROM generate_series($1::bigint, $2::bigint) g',
      [s * perStatement + 1, (s + 1) * perStatement]);
  }
  const committedAt = performance.now();
  const stamped = async () => Number((await pg.query(
    'SELECT count(*) AS n FROM cache_bridge_stamp WHERE bridge_name = $1 AND channel = $2',
    [BRIDGE_NAME, CHANNEL])).rows[0].n);
  await h.waitUntil(async () => (await stamped()) >= KEYS, STAMP_WAIT_MS,
    { intervalMs: 20, message: `${KEYS} stamps in cache_bridge_stamp` });
  return { stampLagMs: performance.now() - committedAt };
}

/** One GET /snapshot: {ms, bytes, keys, truncated}. Anything but a 200 is an error. */
async function snapshotOnce(h, url) {
  const t0 = performance.now();
  const res = await h.http(url, { timeoutMs: REQUEST_TIMEOUT_MS });
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${res.text.slice(0, 200)}`);
  const body = JSON.parse(res.text);
  return { ms, bytes: Buffer.byteLength(res.text), keys: body.invalidations.length, truncated: body.truncated };
}

/**
 * `total` requests spread over `clients` clients, each one request after the other.
 * Returns {latencies, last (the last answer), wallMs, cpu: {bridge, postgres} seconds}.
 */
async function snapshotLoad(h, url, { total, clients, pids }) {
  const cpu0 = { bridge: cpuSeconds(pids.bridge), postgres: treeCpuSeconds(pids.postgres) };
  const latencies = [];
  let last;
  const t0 = performance.now();
  const client = async (n) => {
    for (let i = 0; i < n; i++) {
      last = await snapshotOnce(h, url);
      latencies.push(last.ms);
    }
  };
  const shares = Array.from({ length: clients }, (_, c) => Math.floor(total / clients) + (c < total % clients ? 1 : 0));
  await Promise.all(shares.map(client));
  const wallMs = performance.now() - t0;
  const cpu = { bridge: cpuSeconds(pids.bridge) - cpu0.bridge, postgres: treeCpuSeconds(pids.postgres) - cpu0.postgres };
  return { latencies, last, wallMs, cpu, total };
}

/** The plan node that reads cache_bridge_stamp (depth first). */
function stampScan(node) {
  if (node['Relation Name'] === 'cache_bridge_stamp') return node;
  for (const child of node.Plans ?? []) {
    const found = stampScan(child);
    if (found) return found;
  }
  return null;
}

/** EXPLAIN ANALYZE of the snapshot query, 3 times (warm cache); the run of median execution time. */
async function explainSnapshotQuery(pg, maxKeys) {
  const minSeq = Date.now() * 1000 - MAX_AGE_S * 1e6;
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const r = await pg.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${SNAPSHOT_SQL}`,
      [BRIDGE_NAME, CHANNEL, minSeq, maxKeys]);
    runs.push(r.rows[0]['QUERY PLAN'][0]);
  }
  runs.sort((a, b) => a['Execution Time'] - b['Execution Time']);
  const run = runs[1];
  const top = run.Plan;
  const scan = stampScan(top);
  const indexOk = scan?.['Node Type'] === 'Index Scan' && scan['Index Name'] === 'cache_bridge_stamp_channel_idx';
  return {
    executionMs: run['Execution Time'], planningMs: run['Planning Time'],
    hit: top['Shared Hit Blocks'], read: top['Shared Read Blocks'], rows: top['Actual Rows'],
    plan: `${top['Node Type']} → ${scan ? `${scan['Node Type']}${scan['Scan Direction'] === 'Backward' ? ' Backward' : ''}` +
      `${scan['Index Name'] ? ` using ${scan['Index Name']}` : ''}` : 'no scan of cache_bridge_stamp'}`,
    indexOk, filter: scan?.Filter ?? null,
  };
}

async function snapshotPart(h, opts) {
  log('part 1: starting PostgreSQL, Soketi and the current bridge');
  const stack = await h.startStack({ soketi: { secret: 'bench-contract-secret' } });
  try {
    // The rate limit would answer 429 to a benchmark: raise it out of the way.
    const bridge = await stack.startBridge({ BRIDGE_SNAPSHOT_MAX_PER_SEC: 1000000 }, { bin: opts.afterBin });
    const { stampLagMs } = await loadStampedKeys(h, stack.pg);
    log(`${KEYS} keys stamped ${fmtInt(stampLagMs)} ms after their commits`);
    const url = `${stack.baseUrl}/snapshot?channel=${encodeURIComponent(CHANNEL)}`;
    const pids = { bridge: bridge.pid, postgres: stack.pg.proc.pid };

    for (let i = 0; i < WARMUP_REQUESTS; i++) await snapshotOnce(h, url);
    log(`${opts.requests} sequential snapshot requests`);
    const sequential = await snapshotLoad(h, url, { total: opts.requests, clients: 1, pids });
    log(`${opts.requests} snapshot requests from ${CONCURRENT_CLIENTS} concurrent clients`);
    const concurrent = await snapshotLoad(h, url, { total: opts.requests, clients: CONCURRENT_CLIENTS, pids });
    const query = await explainSnapshotQuery(stack.pg, KEYS);
    const metrics = {
      stampsWritten: await bridgeMetric(h.http, stack.opsUrl, 'cache_bridge_stamps_written_total'),
      served: await bridgeMetric(h.http, stack.opsUrl, 'cache_bridge_snapshots_served_total'),
      refused: await bridgeMetric(h.http, stack.opsUrl, 'cache_bridge_snapshots_refused_total'),
    };
    return { stampLagMs, sequential, concurrent, query, metrics };
  } finally {
    await stack.stop();
  }
}

// ---------------------------------------------------------------------------------------
// Part 2: the write-back's cost at saturation, before vs. after

/** Runs scripts/bench.mjs's saturation scenario with `bin`; resolves with its JSON report. */
function benchSaturation(bin, out, legacyOps = false) {
  return new Promise((resolve, reject) => {
    // stdout is the Markdown bench.mjs also writes to `out`; its progress (stderr) passes through.
    const child = spawn(process.execPath, [path.join(repoRoot, 'scripts', 'bench.mjs'), '--only', '^saturate$', '--out', out],
      { cwd: repoRoot, env: { ...process.env, CACHE_BRIDGE_BIN: bin, ...(legacyOps ? { BENCH_LEGACY_OPS: '1' } : {}) },
        stdio: ['ignore', 'ignore', 'inherit'] });
    const timer = setTimeout(() => {
      log(`bench.mjs still running after ${BENCH_RUN_TIMEOUT_MS / 60000} min: stopping it`);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 20000).unref();
    }, BENCH_RUN_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`bench.mjs with ${bin} failed (code ${code}, signal ${signal})`));
      try {
        resolve(JSON.parse(readFileSync(out.replace(/\.md$/, '') + '.json', 'utf8')));
      } catch (err) {
        reject(new Error(`bench.mjs wrote no readable JSON beside ${out}: ${err.message}`));
      }
    });
  });
}

/** The rows of one bench.mjs run we compare: per system and batch size. */
function saturationRows(report, round, binary) {
  return report.results.filter((r) => r.scenario === 'saturate').map((r) => {
    // CPU seconds over the row's window, per committed change (as scripts/bench's report does).
    const perEventUs = (pct) => (Number.isFinite(pct) && r.committed > 0
      ? (pct / 100) * r.cpu.wallSeconds / r.committed * 1e6 : NaN);
    return {
      round, binary, system: r.system, batch: r.batch,
      committedPerSec: r.committedPerSec, deliveredPerSec: r.deliveredPerSec, undelivered: r.undelivered,
      complete: r.complete, p99: r.latency?.p99, cpuPct: r.cpu?.system,
      bridgeUsPerEvent: perEventUs(r.cpu?.system), pgUsPerEvent: perEventUs(r.cpu?.postgres),
    };
  });
}

async function saturationPart(opts) {
  const rawDir = opts.out.replace(/\.md$/, '');
  mkdirSync(rawDir, { recursive: true });
  const rows = [];
  const runSeconds = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const [binary, bin] of [['before', opts.beforeBin], ['after', opts.afterBin]]) {
      log(`part 2: round ${round}/${opts.rounds}, ${binary} (${bin})`);
      const t0 = Date.now();
      // The "before" build (no stamps, no /snapshot) predates the operators' port too.
      const report = await benchSaturation(bin, path.join(rawDir, `round${round}-${binary}.md`), binary === 'before');
      runSeconds.push((Date.now() - t0) / 1000);
      rows.push(...saturationRows(report, round, binary));
    }
  }
  return { rows, runSeconds, rawDir };
}

/** Per batch size: after/before ratios per round and their median. */
function saturationRatios(rows, rounds) {
  const batches = [...new Set(rows.filter((r) => r.system === 'bridge').map((r) => r.batch))].sort((a, b) => a - b);
  return batches.map((batch) => {
    const perRound = [];
    for (let round = 1; round <= rounds; round++) {
      const pick = (binary) => rows.find((r) => r.round === round && r.system === 'bridge' && r.binary === binary && r.batch === batch);
      const before = pick('before');
      const after = pick('after');
      if (!before || !after) continue;
      perRound.push({
        committed: after.committedPerSec / before.committedPerSec,
        delivered: after.deliveredPerSec / before.deliveredPerSec,
        bridgeCpu: after.bridgeUsPerEvent / before.bridgeUsPerEvent,
        pgCpu: after.pgUsPerEvent / before.pgUsPerEvent,
      });
    }
    const med = (k) => median(perRound.map((x) => x[k]).filter(Number.isFinite));
    return { batch, perRound, committed: med('committed'), delivered: med('delivered'), bridgeCpu: med('bridgeCpu'), pgCpu: med('pgCpu') };
  });
}

// ---------------------------------------------------------------------------------------
// Report

function loadSummary(load) {
  return `${fmt(percentile(load.latencies, 0.5))} / ${fmt(percentile(load.latencies, 0.99))} / ` +
    `${fmt(Math.max(...load.latencies))}`;
}

function cpuPerRequest(load) {
  return `bridge ${fmt((load.cpu.bridge * 1000) / load.total)} ms, PostgreSQL ${fmt((load.cpu.postgres * 1000) / load.total)} ms`;
}

function renderSnapshot(s, opts) {
  const q = s.query;
  const seq = s.sequential;
  const conc = s.concurrent;
  const rps = (load) => `${fmtInt(load.total / (load.wallMs / 1000))} answers/s`;
  return [
    `#### 1. GET /snapshot of a channel with ${fmtInt(KEYS)} keys`,
    '',
    '| measure | value | notes |',
    '|---|--:|---|',
    `| sequential: p50 / p99 / max ms (whole body received) | ${loadSummary(seq)} | ${opts.requests} requests after ${WARMUP_REQUESTS} warm-up ones, one keep-alive client; ${rps(seq)} |`,
    `| ${CONCURRENT_CLIENTS} concurrent clients: p50 / p99 / max ms | ${loadSummary(conc)} | ${opts.requests} requests in all; ${rps(conc)} |`,
    `| answer | ${fmtInt(seq.last.bytes)} bytes | ${fmtInt(seq.last.keys)} keys, truncated ${seq.last.truncated}; ${fmt(seq.last.bytes / seq.last.keys, 0)} bytes per key |`,
    `| CPU per answer, sequential | ${cpuPerRequest(seq)} | utime+stime from /proc; PostgreSQL = every backend |`,
    `| CPU per answer, ${CONCURRENT_CLIENTS} clients | ${cpuPerRequest(conc)} | |`,
    `| the query: execution / planning ms | ${fmt(q.executionMs, 2)} / ${fmt(q.planningMs, 2)} | EXPLAIN (ANALYZE, BUFFERS), median of 3, after the requests above |`,
    `| the query: shared buffers hit / read | ${fmtInt(q.hit)} / ${fmtInt(q.read)} | 8 KiB pages |`,
    `| the query: rows | ${fmtInt(q.rows)} | LIMIT ${fmtInt(KEYS)} + 1 (the +1 detects truncation) |`,
    `| the query: plan | ${q.indexOk ? 'OK' : 'MISS'} | ${q.plan}${q.filter ? `; Filter: ${q.filter}` : ''} |`,
    `| write-back: last of ${fmtInt(KEYS)} rows committed → all stamped | ${fmtInt(s.stampLagMs)} ms | ${INSERT_STATEMENTS} INSERTs of ${fmtInt(KEYS / INSERT_STATEMENTS)} rows, one after the other; polled every 20 ms |`,
    `| cache_bridge_stamps_written_total | ${fmtInt(s.metrics.stampsWritten)} | /metrics after part 1 (${fmtInt(KEYS)} keys changed) |`,
    `| snapshots served / refused | ${fmtInt(s.metrics.served)} / ${fmtInt(s.metrics.refused)} | expected ${fmtInt(WARMUP_REQUESTS + 2 * opts.requests)} / 0 |`,
    '',
  ];
}

function renderSaturation(sat, opts) {
  if (sat.skipped) return ['#### 2. The stamp write-back at saturation', '', `Skipped: ${sat.skipped}`, ''];
  const out = [
    '#### 2. The stamp write-back at saturation (scripts/bench.mjs `--only \'^saturate$\'`)',
    '',
    `before: \`${opts.beforeBin}\`; after: \`${opts.afterBin}\`. bench.mjs runs: ` +
      `${sat.runSeconds.map((s) => `${fmt(s, 0)} s`).join(', ')}. Raw reports in \`${path.relative(repoRoot, sat.rawDir)}/\`.`,
    '',
    '| round | system | batch | committed/s | delivered/s | delivered / committed | missing | p99 ms | CPU % | µs CPU/change | PostgreSQL µs CPU/change |',
    '|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  // Bridge rows first (batch 10 before/after, then 100), the baseline rows after them.
  const order = (r) => (r.system === 'bridge' ? 0 : 1000) + (r.batch ?? 0) + (r.binary === 'after' ? 0.5 : 0);
  const rows = [...sat.rows].sort((a, b) => a.round - b.round || order(a) - order(b));
  for (const r of rows) {
    const name = r.system === 'bridge' ? `bridge, ${r.binary}` : `${r.system}.mjs (drift control, in the ${r.binary} run)`;
    out.push(`| ${r.round} | ${name} | ${r.batch ?? '—'} | ${fmtInt(r.committedPerSec)} | ${fmtInt(r.deliveredPerSec)} | ` +
      `${fmt((100 * r.deliveredPerSec) / r.committedPerSec, 0)}% | ${r.complete ? '0' : fmtInt(r.undelivered)} | ${fmtInt(r.p99)} | ` +
      `${fmt(r.cpuPct)} | ${fmt(r.bridgeUsPerEvent)} | ${fmt(r.pgUsPerEvent)} |`);
  }
  out.push('');
  out.push('| after / before, batch | delivered/s (median) | delivered/s per round | committed/s (median) | bridge CPU per change | PostgreSQL CPU per change |');
  out.push('|--:|--:|---|--:|--:|--:|');
  for (const r of saturationRatios(sat.rows, opts.rounds)) {
    out.push(`| ${r.batch} | ${fmtRatio(r.delivered)} | ${r.perRound.map((x) => fmtRatio(x.delivered)).join(', ')} | ` +
      `${fmtRatio(r.committed)} | ${fmtRatio(r.bridgeCpu)} | ${fmtRatio(r.pgCpu)} |`);
  }
  out.push('');
  out.push('delivered/s: what the slowest subscriber received while the writers ran, per second (bench.mjs). ' +
    'Where delivered / committed is about 100% the bridge kept up and the writers set the rate: the ratio then ' +
    'measures how much the write-back slows PostgreSQL on the shared cores, not the bridge. ' +
    'CPU per change: utime+stime over the row\'s window divided by the rows committed; the write-back\'s ' +
    'UPSERTs show in the bridge\'s and PostgreSQL\'s share. Medians of an even count are the mean of the middle two. ' +
    'The baseline rows do not depend on the bridge: their spread between rounds is the machine\'s drift.');
  out.push('');
  return out;
}

function render({ snapshot, saturation, opts, startedAt, finishedAt, loadavg }) {
  const cpus = os.cpus();
  const minutes = ((finishedAt - startedAt) / 60000).toFixed(1);
  return [
    '### cache-bridge: the cost of the timestamp contract',
    '',
    `\`${['scripts/bench-contract', ...process.argv.slice(2)].join(' ')}\` — ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
      `${minutes} min; ${cpus.length} cores (${cpus[0]?.model?.trim() ?? '?'}) shared by PostgreSQL, Soketi, the ` +
      `clients and the bridge, all on 127.0.0.1; Node.js ${process.version}; load average before: ${loadavg}.`,
    '',
    ...renderSnapshot(snapshot, opts),
    ...renderSaturation(saturation, opts),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // Imported only now: the harness needs scripts/node_modules, which --help must not.
  const h = await import('../../tests/integration/harness.mjs');
  if (!existsSync(opts.afterBin)) fail(`${opts.afterBin} not found: build it (cmake --build build -j2 --target cache-bridge)`);
  const startedAt = new Date();
  const loadavg = os.loadavg().map((x) => x.toFixed(2)).join(' ');

  const snapshot = await snapshotPart(h, opts);
  let saturation;
  if (opts.skipSaturation) saturation = { skipped: '--skip-saturation.' };
  else if (!existsSync(opts.beforeBin)) {
    saturation = { skipped: `no bridge from before the change at ${opts.beforeBin}${opts.beforeBinGiven ? '' : ' (pass --before-bin PATH)'}.` };
    log(`part 2 skipped: ${saturation.skipped}`);
  } else saturation = await saturationPart(opts);

  const report = render({ snapshot, saturation, opts, startedAt, finishedAt: new Date(), loadavg });
  process.stdout.write(report);
  mkdirSync(path.dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, report);
  log(`wrote ${path.relative(process.cwd(), opts.out) || opts.out}`);
}

main().catch((err) => {
  console.error(`bench-contract: FAILED: ${err.stack || err}`);
  process.exit(1);
});
