#!/usr/bin/env node
// Fan-out over a Soketi cluster (issue 10): the same load to the same number of pusher-js
// subscribers, all on one Soketi node, or split over two nodes on one Redis (the bridge
// publishing through the first, SOKETI_HOST=A,B), cells alternating in one run.
//
//   node scripts/bench-cluster.mjs [--quick] [--subs N] [--rate R[,R...]] [--seconds S] [--rounds K] [--out PATH]
//   scripts/bench cluster [...]     the same, after installing and building
//
// Defaults: 1,000 subscribers; 20 and 50 new rows a second (each row one event to every
// subscriber: 20,000 and 50,000 deliveries a second; on 2 cores the second is about where the
// subscribers' own processes saturate) for 5 s each; 2 rounds of (one node, two nodes) per
// rate; --quick: 3 s, 1 round.
// Per cell: deliveries/s over all subscribers from the first write to the last delivery (and
// while the writers ran), how long after the last commit the last delivery came, latency from the row's write to its receipt (p50, p99, max; every delivery), what
// never arrived, and CPU (% of one core) of each process. Markdown on stdout and in --out
// (default .local/bench-cluster.md), raw numbers beside it (.json), progress on stderr.
//
// Process layout as scripts/bench.mjs: this driver only orchestrates; the writer and two
// subscriber processes (500 clients each by default; in the two-node cells one process per
// node) are workers of their own. Everything is on this machine's cores: read the CPU columns
// before reading the rates as Soketi's.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  BRIDGE_BIN, freePort, http, repoRoot, sleep, startBridge, startPostgres, startRedis, startSoketi, waitUntilLinked,
} from '../tests/integration/harness.mjs';
import { forkWorker } from './benchmark/ipc.mjs';
import { cpuMeter } from './benchmark/proc.mjs';
import { percentile } from './benchmark/stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHANNEL = 'invalidations';
const log = (msg) => process.stderr.write(`bench-cluster: ${msg}\n`);

function parseArgs(argv) {
  const opts = { quick: false, subs: 1000, rates: [20, 50], seconds: null, rounds: null,
    out: path.join(repoRoot, '.local', 'bench-cluster.md') };
  const num = (v, name) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      console.error(`bench-cluster: ${name} needs a positive integer, got ${v}`);
      process.exit(2);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--subs') opts.subs = num(argv[++i], a);
    else if (a === '--rate') opts.rates = String(argv[++i] ?? '').split(',').map((v) => num(v, a));
    else if (a === '--seconds') opts.seconds = num(argv[++i], a);
    else if (a === '--rounds') opts.rounds = num(argv[++i], a);
    else if (a === '--out') opts.out = path.resolve(argv[++i] ?? '');
    else if (a === '-h' || a === '--help') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 21)
        .map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    } else {
      console.error(`bench-cluster: unknown argument ${a}`);
      process.exit(2);
    }
  }
  opts.seconds ??= opts.quick ? 3 : 5;
  opts.rounds ??= opts.quick ? 1 : 2;
  return opts;
}

class ClusterBench {
  constructor(opts) {
    this.opts = opts;
    this.tableSeq = 0;
    this.results = [];
  }

  async start() {
    this.pg = await startPostgres({ source: 'notify' });
    this.redis = await startRedis();
    this.bridgePort = await freePort();
    this.webhookUrl = `http://127.0.0.1:${this.bridgePort}/soketi/webhook`;
    this.writer = forkWorker(path.join(here, 'benchmark', 'writer.mjs'), { name: 'writer' });
    await this.writer.call('open', { url: this.pg.url, connections: 4 });
    this.subWorkers = [0, 1].map((i) => forkWorker(path.join(here, 'benchmark', 'subscriber-worker.mjs'), { name: `subscribers-${i}` }));
  }

  async stop() {
    await this.bridge?.stop();
    await Promise.allSettled([...(this.subWorkers ?? []), this.writer].filter(Boolean).map((w) => w.stop()));
    await Promise.allSettled((this.nodes ?? []).map((n) => n.stop()));
    await Promise.allSettled([this.redis?.stop(), this.pg?.stop()]);
  }

  /** One node (local adapter) or two on Redis; subscribers connected, bridge started. */
  async setUp(layout) {
    await this.subCall('disconnect');
    await this.bridge?.stop();
    await Promise.allSettled((this.nodes ?? []).map((n) => n.stop()));
    if (layout === 'one') {
      this.nodes = [await startSoketi({ webhookUrl: this.webhookUrl })];
    } else {
      this.nodes = [await startSoketi({ webhookUrl: this.webhookUrl, redis: this.redis }),
        await startSoketi({ webhookUrl: this.webhookUrl, redis: this.redis })];
      await waitUntilLinked(this.nodes);
    }
    const half = [Math.ceil(this.opts.subs / 2), Math.floor(this.opts.subs / 2)];
    const t0 = Date.now();
    await Promise.all(this.subWorkers.map((w, i) => {
      const node = this.nodes[i % this.nodes.length];
      return w.call('connect', { port: node.port, key: node.key, channel: CHANNEL, count: half[i] }, 300000);
    }));
    log(`${layout} node(s): ${this.opts.subs} subscribers connected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const n0 = this.nodes[0];
    this.bridge = await startBridge({
      env: {
        DATABASE_URL: this.pg.url, SOKETI_APP_ID: n0.appId, SOKETI_APP_KEY: n0.key, SOKETI_APP_SECRET: n0.secret,
        SOKETI_HOST: this.nodes.map((n) => `127.0.0.1:${n.port}`).join(','), SOKETI_WEBHOOK_URL: this.webhookUrl,
        BRIDGE_PG_CHANNELS: 'cache_invalidation', BRIDGE_CHANNEL: CHANNEL, BRIDGE_LOG_FORMAT: 'text',
      },
      name: 'cache-bridge',
    });
  }

  subCall(type, payload = {}, timeoutMs = 30000) {
    return Promise.all(this.subWorkers.map((w) => w.call(type, payload, timeoutMs)));
  }

  async expectedFromStore(table) {
    const r = await this.pg.query(
      `SELECT cache_key, floor(extract(epoch FROM invalidated_at) * 1000)::bigint AS ms
         FROM cache_invalidated_at WHERE table_name = $1`, [table]);
    return { ids: r.rows.map((x) => Number(x.cache_key.slice(x.cache_key.lastIndexOf(':') + 1))), ts: r.rows.map((x) => Number(x.ms)) };
  }

  async run(layout, rate, round) {
    await this.setUp(layout);
    const table = `c${String(++this.tableSeq).padStart(2, '0')}_${layout}`;
    await this.pg.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0,
      w bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint)`);
    await this.pg.query(`SELECT cache_invalidation_attach('${table}', 'id', row_data => true)`);
    await sleep(1000); // the subscriptions' own webhooks and replays are over
    await this.subCall('start', { table });
    const targets = { bridge: this.bridge.pid, redis: layout === 'two' ? this.redis.proc.pid : null,
      subscribers0: this.subWorkers[0].pid, subscribers1: this.subWorkers[1].pid, postgres: { tree: this.pg.proc.pid } };
    this.nodes.forEach((n, i) => { targets[`soketi${i}`] = n.proc.pid; });
    // scripts/soketi execs Soketi: the pid is Soketi's own.
    const meter = cpuMeter(targets);
    const load = await this.writer.call('run', { table, mode: 'rate', rate, durationMs: this.opts.seconds * 1000 },
      this.opts.seconds * 1000 + 60000);
    const expected = await this.expectedFromStore(table);
    await this.subCall('expect', expected, 60000);
    // Every subscriber has every key, or nothing new for 15 s (on a busy machine the first
    // delivery can come seconds after the last commit), bounded by 60 s after the last commit.
    const deadline = Date.now() + 60000;
    let lastEvents = -1, lastProgress = Date.now(), complete = false, doneAt = Date.now();
    while (Date.now() < deadline) {
      const st = await this.subCall('status');
      doneAt = Math.max(load.lastCommit, ...st.map((s) => s.last));
      if (st.every((s) => s.minSatisfied >= expected.ids.length)) { complete = true; break; }
      const events = st.reduce((a, s) => a + s.events, 0);
      if (events !== lastEvents) { lastEvents = events; lastProgress = Date.now(); }
      if (Date.now() - lastProgress > 15000) break;
      await sleep(100);
    }
    const cpu = meter.stop();
    const fin = await this.subCall('finish', { window: [load.firstStart, load.lastCommit] }, 60000);
    const failovers = await http(`${this.bridge.opsUrl}/metrics`).then((r) =>
      Number(r.text.match(/^cache_bridge_soketi_failovers_total (\d+)/m)?.[1] ?? NaN), () => NaN);
    await this.pg.query(`DROP TABLE ${table}`);

    const perClient = fin.flatMap((f) => f.perClient);
    const hist = new Map();
    for (const f of fin) for (const [ms, n] of f.hist) hist.set(ms, (hist.get(ms) ?? 0) + n);
    const windowSeconds = Math.max(...fin.map((f) => f.windowMs)) / 1000;
    const r = {
      layout, rate, round, subscribers: perClient.length, nodes: this.nodes.length, committed: load.committed,
      writeSeconds: (load.lastCommit - load.firstStart) / 1000,
      // From the first write to the last delivery: the fan-out's throughput, also when it lags.
      deliveriesPerSec: perClient.reduce((a, c) => a + c.events, 0) / ((doneAt - load.firstStart) / 1000),
      // Only what arrived while the writers ran: falls behind the row rate once Soketi lags.
      windowPerSec: perClient.reduce((a, c) => a + c.windowEvents, 0) / windowSeconds,
      lastAfterCommitMs: doneAt - load.lastCommit,
      deliveries: perClient.reduce((a, c) => a + c.events, 0),
      undelivered: perClient.reduce((a, c) => a + c.missing, 0), complete,
      reconnects: perClient.reduce((a, c) => a + c.reconnects, 0),
      latency: { p50: percentile(hist, 0.5), p99: percentile(hist, 0.99), max: Math.max(...fin.map((f) => f.latMax)) },
      cpu, failovers,
    };
    this.results.push(r);
    log(`${layout} node(s), ${rate} rows/s, round ${round}: ${Math.round(r.deliveriesPerSec)} deliveries/s, p99 ${r.latency.p99} ms, ` +
      `undelivered ${r.undelivered}, soketi CPU ${this.nodes.map((_, i) => `${cpu[`soketi${i}`].toFixed(0)}%`).join(' + ')}`);
    return r;
  }
}

function renderReport(opts, results, machine, startedAt) {
  const fmt = (n, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? '-' : Number(n).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  const lines = [];
  lines.push(`### Fan-out over a Soketi cluster (scripts/bench cluster${opts.quick ? ' --quick' : ''})`, '');
  lines.push(`${startedAt.toISOString()}; ${machine.cores} cores (${machine.model}), ${machine.distro}, Node ${process.version}, ` +
    `load average at start ${machine.loadavg}. ${fmt(opts.subs)} pusher-js subscribers in two processes; ` +
    `${opts.rates.join(' and ')} new rows a second for ${opts.seconds} s (notify source, one event per row to every subscriber); ` +
    `one node: every subscriber on one Soketi (local adapter); two nodes: half on each, one Redis (redis-server), ` +
    'the bridge publishing through the first node (SOKETI_HOST=A,B). deliveries/s: every event every subscriber received, ' +
    'from the first write to the last delivery; while writing: only what arrived while the writers ran. ' +
    'Latency: row write to receipt, every delivery. CPU: % of one core over the cell.', '');
  lines.push('| rows/s | cell | deliveries/s | while writing | last delivery after the last commit, ms | p50 ms | p99 ms | max ms | undelivered | CPU % Soketi | CPU % Redis | CPU % bridge | CPU % subscribers | machine busy % |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const soketi = Object.keys(r.cpu).filter((k) => k.startsWith('soketi')).map((k) => fmt(r.cpu[k])).join(' + ');
    lines.push(`| ${r.rate} | ${r.layout === 'one' ? 'one node' : 'two nodes'}, round ${r.round} | ${fmt(r.deliveriesPerSec)} | ${fmt(r.windowPerSec)} | ${fmt(r.lastAfterCommitMs)} | ` +
      `${fmt(r.latency.p50)} | ${fmt(r.latency.p99)} | ${fmt(r.latency.max)} | ${fmt(r.undelivered)}${r.complete ? '' : ' (incomplete)'} | ` +
      `${soketi} | ${r.cpu.redis === undefined ? '-' : fmt(r.cpu.redis)} | ${fmt(r.cpu.bridge)} | ${fmt(r.cpu.subscribers0 + r.cpu.subscribers1)} | ${fmt(r.cpu.machine)} |`);
  }
  lines.push('');
  return lines.join('\n') + '\n';
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const cpus = os.cpus();
  let distro = '';
  try { distro = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? ''; } catch { /* not Linux */ }
  const machine = { cores: cpus.length, model: cpus[0]?.model?.trim() ?? '?', distro, loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' ') };
  const bench = new ClusterBench(opts);
  try {
    log(`PostgreSQL, Redis (bridge binary: ${BRIDGE_BIN})`);
    await bench.start();
    for (const rate of opts.rates) {
      for (let round = 1; round <= opts.rounds; round++) {
        for (const layout of ['one', 'two']) await bench.run(layout, rate, round);
      }
    }
  } finally {
    await bench.stop();
  }
  const report = renderReport(opts, bench.results, machine, startedAt);
  process.stdout.write(report);
  mkdirSync(path.dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, report);
  writeFileSync(opts.out.replace(/\.md$/, '') + '.json', JSON.stringify({ startedAt, machine, opts, results: bench.results }, null, 2));
  log(`wrote ${opts.out}`);
  process.exit(0);
}

main().catch((err) => {
  console.error(`bench-cluster: FAILED: ${err.stack || err}`);
  process.exit(1);
});
