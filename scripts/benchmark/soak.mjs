// scripts/bench --soak DURATION: the bridge at a steady 1,000 changes/s for DURATION (30m,
// 90s, 2h), its RSS (and the anonymous part of it) and CPU sampled every 10 s. It reports whether
// every change was delivered, and the slope of RSS after a warm-up (the first fifth of the run, at
// most 2 minutes): a flat line is the target, a leak shows as a steady climb.
import { cpuSeconds, rssParts } from './proc.mjs';
import { percentile } from './stats.mjs';

const SAMPLE_MS = 10000;
const RATE = 1000;

/** "30m" | "90s" | "2h" | "1800" (seconds) -> milliseconds, or NaN. */
export function parseDuration(text) {
  const m = String(text ?? '').match(/^(\d+(?:\.\d+)?)(s|m|h)?$/);
  if (!m) return NaN;
  return Number(m[1]) * { s: 1000, m: 60000, h: 3600000 }[m[2] ?? 's'];
}

/** Least-squares slope of ys over xs (per unit of x), or NaN with fewer than 2 points. */
export function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den > 0 ? num / den : NaN;
}

function sampleOf(pid, t0, cpuBefore) {
  const { anon, file } = rssParts(pid);
  return { atS: (Date.now() - t0) / 1000, rss: anon + file, anon, cpuS: cpuSeconds(pid) - cpuBefore };
}

/**
 * Runs the soak on a Bench (scripts/bench.mjs) whose PostgreSQL and Soketi are up, with the
 * bridge as the system under test. Returns the raw figures; renderSoak() turns them into Markdown.
 */
export async function runSoak(bench, durationMs, log) {
  const scenario = { id: 'soak', kind: 'rate', subs: 1 };
  const table = await bench.createTable(scenario);
  await bench.setSubscribers(1);
  await bench.startSystem('bridge');
  const pid = bench.system.pid;
  await bench.settle(pid, 3000);
  await bench.subCall('start', { table });

  const t0 = Date.now();
  const cpu0 = cpuSeconds(pid);
  const samples = [sampleOf(pid, t0, cpu0)];
  const timer = setInterval(() => {
    const s = sampleOf(pid, t0, cpu0);
    samples.push(s);
    const prev = samples[samples.length - 2];
    log(`soak ${Math.round(s.atS)} s: RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB (anon ${(s.anon / 2 ** 20).toFixed(1)}), ` +
      `CPU ${((100 * (s.cpuS - prev.cpuS)) / (s.atS - prev.atS)).toFixed(1)}%`);
  }, SAMPLE_MS);
  let load;
  try {
    load = await bench.writer.call('run', { table, mode: 'rate', rate: RATE, durationMs }, durationMs + 120000);
  } finally {
    clearInterval(timer);
  }
  samples.push(sampleOf(pid, t0, cpu0));
  const expected = await bench.expectedFromStore(table);
  await bench.subCall('expect', expected, 120000);
  const drain = await bench.waitDelivered(load.lastCommit, expected.ids.length);
  const fin = await bench.subCall('finish', { window: [load.firstStart, load.lastCommit] }, 120000);
  const alive = bench.system.running();
  await bench.stopSystem();
  await bench.pg.query(`DROP TABLE IF EXISTS ${table}`);

  const perClient = fin.flatMap((f) => f.perClient);
  const hist = new Map();
  for (const f of fin) for (const [ms, n] of f.hist) hist.set(ms, (hist.get(ms) ?? 0) + n);
  return {
    durationMs, rate: RATE, committed: load.committed, keys: expected.ids.length,
    delivered: Math.min(...perClient.map((c) => c.events)),
    undelivered: perClient.reduce((a, c) => a + c.missing, 0), complete: drain.complete,
    lastAfterCommitMs: drain.doneAt - load.lastCommit,
    latency: { p50: percentile(hist, 0.5), p99: percentile(hist, 0.99), max: Math.max(...fin.map((f) => f.latMax)) },
    samples, alive,
  };
}

export function renderSoak(r, { startedAt, machine, command }) {
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  const warmS = Math.min(120, r.durationMs / 1000 / 5);
  const after = r.samples.filter((s) => s.atS >= warmS);
  const perMin = (key) => slope(after.map((s) => s.atS / 60), after.map((s) => s[key]));
  const last = r.samples[r.samples.length - 1];
  const first = after[0] ?? last;
  const cpuPct = (100 * (last.cpuS - first.cpuS)) / Math.max(1e-9, last.atS - first.atS);
  const usPerChange = (cpuPct / 100) * 1e6 / r.rate;
  const maxRss = Math.max(...after.map((s) => s.rss));
  const maxAnon = Math.max(...after.map((s) => s.anon));
  const out = [];
  out.push(`### Soak: ${r.rate.toLocaleString('en-US')} changes/s for ${(r.durationMs / 60000).toFixed(1)} min`);
  out.push('');
  out.push(`\`${command}\` — ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC; ${machine.cores} cores ` +
    `(${machine.model}), ${machine.distro}, Linux ${machine.kernel}; load average before: ${machine.loadavg}.`);
  out.push('');
  out.push(`- **Delivered**: ${r.committed.toLocaleString('en-US')} committed, ${r.delivered.toLocaleString('en-US')} events at the ` +
    `subscriber, ${r.undelivered} keys without their final timestamp${r.complete ? '' : ' (INCOMPLETE)'}; the last ` +
    `${r.lastAfterCommitMs} ms after the last commit. Latency commit→client p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, max ${r.latency.max} ms.` +
    `${r.alive ? '' : ' **The bridge exited during the run.**'}`);
  out.push(`- **CPU** after the ${warmS.toFixed(0)} s warm-up: ${cpuPct.toFixed(1)}% of a core, ${usPerChange.toFixed(0)} µs per change.`);
  out.push(`- **RSS** after the warm-up: ${mib(first.rss)} MiB at ${first.atS.toFixed(0)} s, ${mib(last.rss)} MiB at the end, ` +
    `at most ${mib(maxRss)} MiB; slope ${(perMin('rss') / 1024).toFixed(1)} KiB/min ` +
    `(end/start ${(last.rss / first.rss).toFixed(3)}×). RssAnon: ${mib(first.anon)} → ${mib(last.anon)} MiB, at most ` +
    `${mib(maxAnon)} MiB, slope ${(perMin('anon') / 1024).toFixed(1)} KiB/min.`);
  out.push('');
  out.push('| t s | RSS MiB | RssAnon MiB | CPU % (since the sample before) |');
  out.push('|--:|--:|--:|--:|');
  // At most ~60 rows: every k-th sample, and always the last.
  const step = Math.max(1, Math.ceil(r.samples.length / 60));
  r.samples.forEach((s, i) => {
    if (i === 0 || (i % step !== 0 && i !== r.samples.length - 1)) return;
    const prev = r.samples[Math.max(0, i - step)];
    const cpu = (100 * (s.cpuS - prev.cpuS)) / Math.max(1e-9, s.atS - prev.atS);
    out.push(`| ${s.atS.toFixed(0)} | ${mib(s.rss)} | ${mib(s.anon)} | ${cpu.toFixed(1)} |`);
  });
  out.push('');
  return out.join('\n');
}
