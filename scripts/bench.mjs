#!/usr/bin/env node
// Issue 4's benchmark driver (scripts/bench installs, builds, then runs this).
//
//   node scripts/bench.mjs [--quick] [--out PATH] [--only REGEX] [--bridge-env KEY=VALUE]...
//
// On 127.0.0.1, against a private PostgreSQL cluster with sql/cache_invalidation.sql, a real
// Soketi and real pusher-js subscribers, measures side by side:
//   bridge    build/bridge/cache-bridge with its defaults (coalescing 200 ms, 2 requests in flight)
//   baseline  scripts/benchmark/baseline.mjs: pg LISTEN + pusher.trigger() per notification, one at
//             a time (and, at 1,000/s and in the burst, its fire-and-forget variant)
//   ceiling   scripts/benchmark/ceiling.mjs: pre-signed /batch_events straight to Soketi
// at SOKETI_EVENT_MAX_BATCH_SIZE 10 (Soketi's default) and 100 (Soketi and the bridge restarted).
// Prints a Markdown report and writes it to --out (default .local/bench.md), raw numbers next
// to it (.json). --only keeps the scenarios whose id matches REGEX; --bridge-env puts a variable
// in the bridge's environment (BRIDGE_PUBLISH_CONCURRENCY=8, MALLOC_ARENA_MAX=2, ...): both are
// for experiments, and the report says when they were used.
//
// Process layout: this driver only orchestrates and polls; the writers (writer.mjs), the
// ceiling generator (ceiling.mjs) and the pusher-js subscribers (subscriber-worker.mjs, two
// processes) are child processes of their own, so that no one's event loop paces another's.
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  BRIDGE_BIN, cleanEnv, freePort, http, repoRoot, sleep, spawnCaptured, startBridge, startPostgres,
  startSoketi,
} from '../tests/integration/harness.mjs';
import { forkWorker } from './benchmark/ipc.mjs';
import { anonPeakSampler, cpuMeter, cpuSeconds, peakRssBytes, resetPeakRss, rssParts } from './benchmark/proc.mjs';
import { renderReport } from './benchmark/report.mjs';
import { parseDuration, renderSoak, runSoak } from './benchmark/soak.mjs';
import { percentile } from './benchmark/stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHANNEL = 'invalidations';
const COALESCE_MS = 200; // the bridge's default, stated here to check the hot-key target
const POLL_MS = 100;

// ---------------------------------------------------------------------------------------
// Arguments and plan

function parseArgs(argv) {
  const opts = { quick: false, out: path.join(repoRoot, '.local', 'bench.md'), only: null, bridgeEnv: {}, soakMs: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--out') opts.out = path.resolve(argv[++i] ?? '');
    else if (a.startsWith('--out=')) opts.out = path.resolve(a.slice(6));
    else if (a === '--only') opts.only = new RegExp(argv[++i] ?? '');
    else if (a === '--soak') {
      opts.soakMs = parseDuration(argv[++i]);
      if (!(opts.soakMs >= 10000)) {
        console.error('bench: --soak needs a duration of at least 10 s: 30m, 90s, 2h');
        process.exit(2);
      }
    }
    else if (a === '--bridge-env') {
      const m = (argv[++i] ?? '').match(/^([A-Z_][A-Z0-9_]*)=(.*)$/);
      if (!m) {
        console.error('bench: --bridge-env needs KEY=VALUE');
        process.exit(2);
      }
      opts.bridgeEnv[m[1]] = m[2];
    }
    else if (a === '-h' || a === '--help') {
      console.log('usage: scripts/bench [--quick] [--soak DURATION] [--out PATH (default .local/bench.md)] [--only REGEX] [--bridge-env KEY=VALUE]...');
      process.exit(0);
    } else {
      console.error(`bench: unknown argument ${a}`);
      process.exit(2);
    }
  }
  return opts;
}

/**
 * Scenarios, in run order (1-subscriber ones first: fewer reconnections).
 * kind: rate | saturate | burst | hot (writers), ceiling (no PostgreSQL).
 */
function makePlan(quick) {
  const d = quick ? 2000 : 5000;
  // rateOver: 'writes' = delivered within [first write, last commit] / that time (steady state);
  //           'all' = delivered / (time the last subscriber had every final timestamp - first write).
  const all = [
    { id: 'rate-100', label: 'steady 100/s', kind: 'rate', subs: 1, rate: 100, durationMs: d, rateOver: 'writes' },
    { id: 'rate-1000', label: 'steady 1,000/s', kind: 'rate', subs: 1, rate: 1000, durationMs: d, rateOver: 'writes' },
    { id: 'rate-5000', label: 'steady 5,000/s', kind: 'rate', subs: 1, rate: 5000, durationMs: d, rateOver: 'writes' },
    { id: 'saturate', label: 'saturation, 100 rows/tx', kind: 'saturate', subs: 1, rowsPerTx: 100,
      durationMs: quick ? 2000 : 4000, maxRows: quick ? 50000 : 120000, rateOver: 'writes' },
    { id: 'burst', label: 'burst: 20,000 rows in 4 tx', kind: 'burst', subs: 1, rows: 20000, transactions: 4, rateOver: 'all' },
    { id: 'hot', label: 'hot key', kind: 'hot', subs: 1, durationMs: quick ? 2000 : 3000, rateOver: 'all' },
    { id: 'rate-100-x100', label: 'steady 100/s', kind: 'rate', subs: 100, rate: 100, durationMs: d, rateOver: 'writes' },
    { id: 'saturate-x100', label: 'saturation: 3,000 rows, 100/tx', kind: 'saturate', subs: 100,
      rowsPerTx: 100, durationMs: d, maxRows: 3000, rateOver: 'all' },
  ];
  const quickIds = new Set(['rate-1000', 'saturate', 'burst', 'hot', 'rate-100-x100']);
  const scenarios = quick ? all.filter((s) => quickIds.has(s.id)) : all;
  const ceilingMs = quick ? 2000 : 3000;
  const ceilings = [
    // Pre-signed pools sized above what Soketi took in trial runs (~45k/s at 10, ~85k/s at 100).
    { id: 'ceiling', label: 'saturation', kind: 'ceiling', subs: 1, durationMs: ceilingMs,
      maxEventsPerSecond: { 10: 60000, 100: 120000 }, rateOver: 'writes' },
    // The same, while the saturation scenario's writers commit into a table with the trigger (and
    // no one LISTENs): what Soketi takes when PostgreSQL shares the cores, as in the bridge's rows.
    { id: 'ceiling-writers', label: 'saturation, with the writers running', kind: 'ceiling', subs: 1,
      durationMs: ceilingMs, maxEventsPerSecond: { 10: 60000, 100: 120000 }, rateOver: 'writes', withWriters: true },
    { id: 'ceiling-x100', label: 'saturation: 3,000 events', kind: 'ceiling', subs: 100, durationMs: d,
      maxEvents: 3000, rateOver: 'all' },
  ];
  return {
    phases: [
      { batch: 10, systems: ['ceiling', 'bridge', 'baseline', 'baseline-unbounded'] },
      { batch: 100, systems: ['ceiling', 'bridge'] },
    ],
    scenarios,
    ceilings: quick ? ceilings.filter((c) => c.subs === 1) : ceilings,
    ceilingInFlight: 16,
    // A scenario's delivery may take this long after its last commit before it counts as undelivered.
    drainCapMs: quick ? 15000 : 30000,
    durationMs: d,
  };
}

// ---------------------------------------------------------------------------------------
// Infrastructure

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

class Bench {
  constructor(opts, plan) {
    this.opts = opts;
    this.plan = plan;
    this.results = [];
    this.tableSeq = 0;
    this.subscribers = 0;
  }

  async startCommon() {
    this.pg = await startPostgres();
    this.writer = forkWorker(path.join(here, 'benchmark', 'writer.mjs'), { name: 'writer' });
    await this.writer.call('open', { url: this.pg.url, connections: 4 });
    this.subWorkers = [0, 1].map((i) => forkWorker(path.join(here, 'benchmark', 'subscriber-worker.mjs'), { name: `subscribers-${i}` }));
    this.ceilingGen = forkWorker(path.join(here, 'benchmark', 'ceiling.mjs'), { name: 'ceiling' });
    this.bridgePort = await freePort();
    this.webhookUrl = `http://127.0.0.1:${this.bridgePort}/soketi/webhook`;
  }

  async startSoketi(batch) {
    this.batch = batch;
    this.soketi = await startSoketi({ webhookUrl: this.webhookUrl, batchSize: batch });
    this.subscribers = 0;
  }

  async stopSoketi() {
    await this.setSubscribers(0);
    await this.soketi?.stop();
    this.soketi = null;
  }

  async stopAll() {
    await this.stopSystem();
    await Promise.allSettled([...(this.subWorkers ?? []), this.writer, this.ceilingGen].filter(Boolean).map((w) => w.stop()));
    await this.soketi?.stop();
    await this.pg?.stop();
  }

  /** Spreads `n` pusher-js clients over the two subscriber processes (1 -> 1+0, 100 -> 50+50). */
  async setSubscribers(n) {
    if (n === this.subscribers) return;
    const counts = n <= 1 ? [n, 0] : [Math.ceil(n / 2), Math.floor(n / 2)];
    await Promise.all(this.subWorkers.map((w, i) => w.call('connect',
      { port: this.soketi?.port, key: this.soketi?.key, channel: CHANNEL, count: counts[i] }, 60000)));
    this.subscribers = n;
  }

  subCall(type, payload = {}, timeoutMs = 30000) {
    return Promise.all(this.subWorkers.map((w) => w.call(type, payload, timeoutMs)));
  }

  // --- the system under test: bridge or baseline ---------------------------------------

  async startSystem(name) {
    await this.stopSystem();
    if (name === 'bridge') {
      this.system = await startBridge({
        env: {
          DATABASE_URL: this.pg.url, SOKETI_APP_ID: this.soketi.appId, SOKETI_APP_KEY: this.soketi.key,
          SOKETI_APP_SECRET: this.soketi.secret, SOKETI_HOST: '127.0.0.1', SOKETI_PORT: this.soketi.port,
          SOKETI_WEBHOOK_URL: this.webhookUrl, SOKETI_EVENT_MAX_BATCH_SIZE: this.batch,
          BRIDGE_PG_CHANNELS: 'cache_invalidation', BRIDGE_CHANNEL: CHANNEL,
          BRIDGE_COALESCE_MS: COALESCE_MS, BRIDGE_LOG_FORMAT: 'text',
          // A build from before the operators' port served /readyz and /metrics on the
          // webhook's port: BENCH_LEGACY_OPS=1 looks there (scripts/bench-contract's "before").
          ...(process.env.BENCH_LEGACY_OPS === '1' ? { BRIDGE_OPS_LISTEN: `127.0.0.1:${this.bridgePort}` } : {}),
        },
        // Real environment variables win over the file: this also reaches libc (MALLOC_ARENA_MAX=...).
        processEnv: this.opts.bridgeEnv,
        name: 'cache-bridge',
      });
    } else if (name === 'baseline' || name === 'baseline-unbounded') {
      const proc = spawnCaptured(process.execPath, [path.join(here, 'benchmark', 'baseline.mjs')], {
        name,
        env: cleanEnv({
          DATABASE_URL: this.pg.url, SOKETI_APP_ID: this.soketi.appId, SOKETI_APP_KEY: this.soketi.key,
          SOKETI_APP_SECRET: this.soketi.secret, SOKETI_HOST: '127.0.0.1', SOKETI_PORT: this.soketi.port,
          BRIDGE_CHANNEL: CHANNEL, BASELINE_MODE: name === 'baseline' ? 'sequential' : 'unbounded',
        }),
      });
      await proc.waitForLine(/^baseline: listening/, 20000);
      this.system = proc;
    }
    this.systemName = name;
  }

  async stopSystem() {
    if (this.system) await this.system.stop();
    this.system = null;
  }

  /** Waits (at most maxMs) until pid uses < 1 clock tick per 300 ms: done starting up. */
  async settle(pid, maxMs = 10000) {
    const deadline = Date.now() + maxMs;
    let prev = cpuSeconds(pid);
    while (Date.now() < deadline) {
      await sleep(300);
      const cur = cpuSeconds(pid);
      if (!Number.isFinite(cur)) return false;
      if (cur - prev <= 0.011) return true;
      prev = cur;
    }
    return false;
  }

  // --- one scenario --------------------------------------------------------------------

  async createTable(scenario) {
    const table = `b${String(++this.tableSeq).padStart(2, '0')}_${scenario.id.replace(/-/g, '_')}`;
    await this.pg.query(`DROP TABLE IF EXISTS ${table}`);
    // w: when the row was written (epoch ms, inside the transaction), carried in the event's data:
    // what latency is measured from.
    await this.pg.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0,
      w bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint)`);
    // The hot row exists before the trigger: its INSERT is not part of the measurement.
    if (scenario.kind === 'hot') await this.pg.query(`INSERT INTO ${table} (id, v) VALUES (1, 0)`);
    if (scenario.kind !== 'ceiling' || scenario.withWriters) await this.pg.query(`SELECT cache_invalidation_attach('${table}', 'id', row_data => true)`);
    return table;
  }

  /** Final timestamp of every key of `table`, from the store. */
  async expectedFromStore(table) {
    const r = await this.pg.query(
      `SELECT cache_key, floor(extract(epoch FROM invalidated_at) * 1000)::bigint AS ms
         FROM cache_invalidated_at WHERE table_name = $1`, [table]);
    const ids = [], ts = [];
    for (const row of r.rows) {
      ids.push(Number(row.cache_key.slice(row.cache_key.lastIndexOf(':') + 1)));
      ts.push(Number(row.ms));
    }
    return { ids, ts };
  }

  /**
   * Polls the subscribers until every one holds every key's final timestamp, or nothing new
   * arrived for 5 s, or drainCapMs passed since the last commit. Returns {complete, doneAt}.
   */
  async waitDelivered(lastCommit, expectedCount) {
    const hardDeadline = Math.max(Date.now(), lastCommit) + this.plan.drainCapMs;
    let lastEvents = -1, lastProgress = Date.now();
    for (;;) {
      const st = (await this.subCall('status')).filter((s) => s.clients > 0);
      const complete = st.every((s) => s.minSatisfied >= expectedCount);
      if (complete) return { complete, doneAt: Math.max(lastCommit, ...st.map((s) => s.satisfiedAt)) };
      const events = st.reduce((a, s) => a + s.events, 0);
      if (events !== lastEvents) {
        lastEvents = events;
        lastProgress = Date.now();
      }
      if (Date.now() - lastProgress > 5000 || Date.now() > hardDeadline) {
        return { complete: false, doneAt: Math.max(...st.map((s) => s.last)) };
      }
      await sleep(POLL_MS);
    }
  }

  async run(system, scenario) {
    const table = await this.createTable(scenario);
    await this.setSubscribers(scenario.subs);
    await this.pg.query('TRUNCATE cache_invalidation_log');
    // A fresh process per row: peak RSS and CPU belong to this row alone.
    if (system !== 'ceiling') await this.startSystem(system);
    const sysPid = this.system?.pid;
    if (sysPid) await this.settle(sysPid, 3000);
    const metricsBefore = await this.bridgeMetrics();
    await this.subCall('start', { table, timeline: scenario.kind === 'hot' });

    if (scenario.kind === 'ceiling') {
      const maxEvents = scenario.maxEvents
        ?? Math.ceil((scenario.maxEventsPerSecond[this.batch] * scenario.durationMs) / 1000);
      await this.ceilingGen.call('prepare', { port: this.soketi.port, appId: this.soketi.appId, key: this.soketi.key,
        secret: this.soketi.secret, channel: CHANNEL, table, batchSize: this.batch, maxEvents }, 120000);
    }
    const idleRss = sysPid ? rssParts(sysPid) : null;
    if (sysPid) resetPeakRss(sysPid);
    const anonSampler = sysPid ? anonPeakSampler(sysPid) : null;
    const meter = cpuMeter({
      system: sysPid, soketi: this.soketi.proc.pid, postgres: { tree: this.pg.proc.pid },
      subscribers0: this.subWorkers[0].pid, subscribers1: this.subWorkers[1].pid,
      load: scenario.kind === 'ceiling' ? this.ceilingGen.pid : this.writer.pid,
      driver: process.pid,
    });

    let load, expected;
    if (scenario.kind === 'ceiling') {
      const sat = this.plan.scenarios.find((x) => x.id === 'saturate') ?? { rowsPerTx: 100, maxRows: 120000 };
      const writers = scenario.withWriters
        ? this.writer.call('run', { table, mode: 'saturate', rowsPerTx: sat.rowsPerTx, durationMs: scenario.durationMs,
          maxRows: sat.maxRows }, scenario.durationMs + 120000)
        : null;
      load = await this.ceilingGen.call('run', { durationMs: scenario.durationMs, inFlight: this.plan.ceilingInFlight },
        scenario.durationMs + 60000);
      if (writers) load.writerRows = (await writers).committed;
      expected = { ids: [], ts: [] };
      for (const i of load.acceptedRequests) {
        for (let k = 1; k <= this.batch; k++) {
          expected.ids.push(i * this.batch + k);
          expected.ts.push(load.signedAt);
        }
      }
      delete load.acceptedRequests;
    } else {
      const common = { table, durationMs: scenario.durationMs };
      const job = {
        rate: { mode: 'rate', rate: scenario.rate },
        saturate: { mode: 'saturate', rowsPerTx: scenario.rowsPerTx, maxRows: scenario.maxRows },
        burst: { mode: 'burst', rows: scenario.rows, transactions: scenario.transactions },
        hot: { mode: 'hot', row: 1, connections: 2 },
      }[scenario.kind];
      load = await this.writer.call('run', { ...common, ...job }, (scenario.durationMs ?? 0) + 120000);
      expected = await this.expectedFromStore(table);
    }
    await this.subCall('expect', expected, 60000);
    const drain = await this.waitDelivered(load.lastCommit, expected.ids.length);
    const cpu = meter.stop();
    const peakRss = sysPid ? peakRssBytes(sysPid) : NaN;
    const peakAnon = anonSampler ? anonSampler.stop() : NaN;
    const metricsAfter = await this.bridgeMetrics();
    const fin = await this.subCall('finish', { window: [load.firstStart, load.lastCommit] }, 60000);
    const alive = this.system ? this.system.running() : true;
    if (system !== 'ceiling') await this.stopSystem();
    await this.pg.query(`DROP TABLE IF EXISTS ${table}`);
    return this.summarize({ system, scenario, load, expected, drain, cpu, peakRss, peakAnon, idleRss, fin, alive,
      metrics: metricsBefore && metricsAfter ? diffMetrics(metricsBefore, metricsAfter) : null });
  }

  /** The bridge's Prometheus counters (null for the other systems). */
  async bridgeMetrics() {
    if (this.systemName !== 'bridge' || !this.system?.running()) return null;
    try {
      const text = (await http(`${this.system.opsUrl}/metrics`, { timeoutMs: 3000 })).text;
      const out = {};
      for (const line of text.split('\n')) {
        const m = line.match(/^cache_bridge_([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/);
        if (m) out[m[1] + (m[2] ?? '')] = Number(m[3]);
      }
      return out;
    } catch {
      return null;
    }
  }

  summarize({ system, scenario, load, expected, drain, cpu, peakRss, peakAnon, idleRss, fin, alive, metrics }) {
    const perClient = fin.flatMap((f) => f.perClient);
    const hist = new Map();
    for (const f of fin) for (const [ms, n] of f.hist) hist.set(ms, (hist.get(ms) ?? 0) + n);
    const pct = (p) => percentile(hist, p);
    const delivered = Math.min(...perClient.map((c) => c.events));
    const undelivered = perClient.reduce((a, c) => a + c.missing, 0);
    const writeSpan = (load.lastCommit - load.firstStart) / 1000;
    const allSpan = (drain.doneAt - load.firstStart) / 1000;
    const windowSeconds = Math.max(...fin.map((f) => f.windowMs)) / 1000;
    const deliveredPerSec = scenario.rateOver === 'writes'
      ? Math.min(...perClient.map((c) => c.windowEvents)) / windowSeconds
      : delivered / allSpan;
    const timeline = fin.find((f) => f.timeline)?.timeline ?? null;
    // Once the writers stop: what the slowest subscriber still received, per second of the drain.
    const drainSeconds = (drain.doneAt - load.lastCommit) / 1000;
    const afterWrites = Math.min(...perClient.map((c) => c.events - c.windowEvents));
    const r = {
      system, batch: system.startsWith('baseline') ? null : this.batch, scenario: scenario.id, label: scenario.label,
      kind: scenario.kind, subs: perClient.length, rateOver: scenario.rateOver,
      committed: load.committed, transactions: load.transactions ?? load.requests,
      committedPerSec: writeSpan > 0 ? load.committed / writeSpan : null,
      writeSeconds: writeSpan, keys: expected.ids.length,
      delivered, deliveredTotal: perClient.reduce((a, c) => a + c.events, 0),
      undelivered, undeliveredSubscribers: perClient.filter((c) => c.missing > 0).length,
      complete: drain.complete, drainCapMs: this.plan.drainCapMs,
      deliveredPerSec: Number.isFinite(deliveredPerSec) ? deliveredPerSec : null,
      lastAfterCommitMs: drain.doneAt - load.lastCommit,
      latency: scenario.kind === 'ceiling' ? null : { p50: pct(0.5), p99: pct(0.99), max: Math.max(...fin.map((f) => f.latMax)) },
      deliveredPerSecAfterWrites: drain.complete && drainSeconds > 0.2 ? afterWrites / drainSeconds : null,
      cpu, peakRssBytes: peakRss, peakAnonBytes: peakAnon, idleRss, metrics,
      replays: perClient.reduce((a, c) => a + c.replays, 0),
      reconnects: perClient.reduce((a, c) => a + c.reconnects, 0),
      exitedEarly: !alive,
      loadErrors: load.errors ?? 0, loadFirstError: load.firstError ?? null, exhausted: load.exhausted ?? false,
      withWriters: scenario.withWriters ?? false, writerRows: load.writerRows ?? null,
    };
    if (scenario.kind === 'hot') {
      const allowed = Math.floor((load.lastCommit - load.firstStart) / COALESCE_MS) + 2;
      let minGap = null;
      for (let i = 1; i < (timeline?.length ?? 0); i++) {
        const gap = timeline[i] - timeline[i - 1];
        if (minGap === null || gap < minGap) minGap = gap;
      }
      r.hot = { events: delivered, allowed, minGapMs: minGap, finalDelivered: undelivered === 0 };
    }
    return r;
  }
}

function diffMetrics(before, after) {
  const d = (k) => (after[k] ?? 0) - (before[k] ?? 0);
  const errors = Object.keys(after).filter((k) => k.startsWith('publish_errors_total')).reduce((a, k) => a + d(k), 0);
  return { events: d('events_published_total'), batches: d('batches_published_total'), errors,
    retries: d('publish_retries_total'), coalesced: d('coalesced_total') };
}

// ---------------------------------------------------------------------------------------

function machineDescription() {
  const cpus = os.cpus();
  let kernel = os.release();
  let distro = '';
  try {
    distro = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? '';
  } catch { /* not Linux */ }
  return {
    cores: cpus.length, model: cpus[0]?.model?.trim() ?? 'unknown', memGiB: Math.round(os.totalmem() / 2 ** 30),
    distro, kernel, node: process.version, loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

async function soketiVersion() {
  try {
    return JSON.parse(readFileSync(path.join(repoRoot, 'scripts', 'node_modules', '@soketi', 'soketi', 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

/** How the run was asked for, as a user would type it (without --out). */
function commandLine() {
  const args = process.argv.slice(2).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out' && !a.startsWith('--out='));
  return ['scripts/bench', ...args].join(' ');
}

/** Prints the Markdown report, writes it to `out` and the raw numbers beside it (.json). */
function writeReport(out, markdown, raw) {
  process.stdout.write(markdown);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, markdown);
  const jsonOut = out.replace(/\.md$/, '') + '.json';
  writeFileSync(jsonOut, JSON.stringify(raw, null, 2));
  log(`wrote ${path.relative(process.cwd(), out) || out} and ${path.relative(process.cwd(), jsonOut) || jsonOut}`);
}

async function soak(opts) {
  const bench = new Bench(opts, makePlan(false));
  const startedAt = new Date();
  const machine = machineDescription();
  let result;
  try {
    log(`starting PostgreSQL (bridge binary: ${BRIDGE_BIN})`);
    await bench.startCommon();
    await bench.startSoketi(10);
    result = await runSoak(bench, opts.soakMs, log);
  } finally {
    await bench.stopAll();
  }
  const report = renderSoak(result, { startedAt, machine, command: commandLine() });
  writeReport(opts.out.replace(/bench\.md$/, 'soak.md'), report, { startedAt, machine, result });
  if (!result.complete || result.undelivered > 0 || !result.alive) process.exit(1);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.soakMs) return soak(opts);
  const plan = makePlan(opts.quick);
  const bench = new Bench(opts, plan);
  const startedAt = new Date();
  const machineBefore = machineDescription();
  // Ctrl-C: the harness turns the signal into an exit whose hook kills the servers it started;
  // the forked workers exit when their IPC channel closes.
  const keep = (s) => !opts.only || opts.only.test(s.id);
  try {
    log(`starting PostgreSQL (bridge binary: ${BRIDGE_BIN})`);
    await bench.startCommon();
    for (const phase of plan.phases) {
      log(`starting Soketi with SOKETI_EVENT_MAX_BATCH_SIZE=${phase.batch}`);
      await bench.startSoketi(phase.batch);
      for (const system of phase.systems) {
        const scenarios = (system === 'ceiling' ? plan.ceilings
          : system === 'baseline-unbounded' ? plan.scenarios.filter((s) => s.id === 'rate-1000' || s.id === 'burst')
            : plan.scenarios).filter(keep);
        for (const scenario of scenarios) {
          const t0 = Date.now();
          const r = await bench.run(system, scenario);
          bench.results.push(r);
          log(`${system} batch ${phase.batch} ${scenario.id} x${scenario.subs}: committed ${r.committed}, ` +
            `delivered ${r.delivered}/sub, undelivered ${r.undelivered}, ${Math.round(r.deliveredPerSec)}/s, ` +
            `p99 ${r.latency?.p99 ?? '-'} ms, CPU ${r.cpu.system?.toFixed?.(1) ?? '-'}% ` +
            `(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        }
      }
      await bench.stopSoketi();
    }
  } finally {
    await bench.stopAll();
  }

  const finishedAt = new Date();
  const report = renderReport({
    results: bench.results, quick: opts.quick, startedAt, finishedAt, machine: machineBefore,
    soketiVersion: await soketiVersion(), coalesceMs: COALESCE_MS, plan, bridgeEnv: opts.bridgeEnv,
    command: commandLine(),
  });
  writeReport(opts.out, report, { startedAt, finishedAt, machine: machineBefore, results: bench.results });
}

main().catch((err) => {
  console.error(`bench: FAILED: ${err.stack || err}`);
  process.exit(1);
});
