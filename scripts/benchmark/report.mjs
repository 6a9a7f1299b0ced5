// Renders scripts/bench's results as Markdown: the main table (one row per system and
// scenario, with PASS/MISS against issue 4's targets), where the CPU went, and how to read it.

const TARGET_RSS_BYTES = 16 * 1024 * 1024;

const fmtInt = (n) => (n == null || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US'));
const fmtNum = (n, digits = 1) => (n == null || !Number.isFinite(n) ? '—' : n.toFixed(digits));
const fmtMs = (n) => (n == null || !Number.isFinite(n) ? '—' : String(Math.round(n)));
const fmtMiB = (b) => (b == null || !Number.isFinite(b) ? '—' : (b / 2 ** 20).toFixed(1));
const fmtRatio = (x) => (x == null || !Number.isFinite(x) ? '—'
  : x >= 10 ? `${x.toFixed(0)}×` : x >= 0.1 ? `${x.toFixed(2)}×` : `${x.toPrecision(2)}×`);

const SYSTEM_ORDER = { ceiling: 0, bridge: 1, baseline: 2, 'baseline-unbounded': 3 };
const SYSTEM_LABEL = { 'baseline-unbounded': 'baseline, fire-and-forget' };

/** The ceiling row a bridge row is compared with: same subscribers and batch size. */
const ceilingFor = (results, r, withWriters = false) => results.find((c) => c.system === 'ceiling'
  && c.subs === r.subs && c.batch === r.batch && c.withWriters === withWriters);
/** The (sequential) baseline row of the same scenario. */
const baselineFor = (results, r) => results.find((b) => b.system === 'baseline' && b.scenario === r.scenario);
/** Delivered as fast as the writers committed: the database, not the system, set the rate. */
const writerBound = (r) => r.rateOver === 'writes' && r.committedPerSec > 0 && r.deliveredPerSec >= 0.95 * r.committedPerSec;

/** [{name, pass, value}] for a bridge row; [] for the others. */
export function targetsFor(results, r) {
  if (r.system !== 'bridge') return [];
  const checks = [];
  if (r.kind !== 'hot') {
    checks.push({ name: 'nothing missing', pass: r.undelivered === 0 && r.complete, value: `${fmtInt(r.undelivered)} undelivered` });
  }
  if (r.kind === 'saturate') {
    const ceiling = ceilingFor(results, r);
    const ratio = ceiling ? r.deliveredPerSec / ceiling.deliveredPerSec : null;
    const loaded = ceilingFor(results, r, true);
    const why = writerBound(r) ? ', writer-bound: delivered as fast as PostgreSQL committed'
      : loaded ? `; ${(100 * r.deliveredPerSec / loaded.deliveredPerSec).toFixed(0)}% of the ceiling with the writers running` : '';
    checks.push({ name: '≥ 90% of ceiling', pass: ratio != null && ratio >= 0.9,
      value: ratio == null ? 'no ceiling row' : `${(100 * ratio).toFixed(0)}%${why}` });
    const baseline = baselineFor(results, r);
    const vsBase = baseline ? r.deliveredPerSec / baseline.deliveredPerSec : null;
    const ceilingVsBase = ceiling && baseline ? ceiling.deliveredPerSec / baseline.deliveredPerSec : null;
    const out = ceilingVsBase != null && ceilingVsBase < 10 ? `, out of reach here: the ceiling itself is ${fmtRatio(ceilingVsBase)} the baseline` : '';
    checks.push({ name: '≥ 10× baseline', pass: vsBase != null && vsBase >= 10, value: vsBase == null ? 'no baseline row' : `${fmtRatio(vsBase)}${out}` });
  }
  if (r.kind === 'burst') {
    checks.push({ name: 'last ≤ 1 s after last commit', pass: r.complete && r.lastAfterCommitMs <= 1000, value: `${fmtInt(r.lastAfterCommitMs)} ms` });
  }
  if (r.scenario === 'rate-1000') {
    checks.push({ name: 'p99 < 5 ms', pass: r.latency?.p99 != null && r.latency.p99 < 5, value: `${fmtMs(r.latency?.p99)} ms` });
    checks.push({ name: 'CPU < 5%', pass: r.cpu.system < 5, value: `${fmtNum(r.cpu.system)}%` });
  }
  if (r.kind === 'hot') {
    checks.push({ name: '≤ 1 event per window', pass: r.hot.events <= r.hot.allowed, value: `${r.hot.events} events, ≤ ${r.hot.allowed} allowed` });
    checks.push({ name: 'final timestamp delivered', pass: r.hot.finalDelivered, value: r.hot.finalDelivered ? 'yes' : 'no' });
  }
  checks.push({ name: 'RSS < 16 MB', pass: r.peakRssBytes < TARGET_RSS_BYTES,
    value: `${fmtMiB(r.peakRssBytes)} MiB, of which at most ${fmtMiB(r.peakAnonBytes)} MiB anonymous` });
  return checks;
}

function ratioCells(results, r) {
  if (r.system !== 'bridge') return ['', ''];
  const base = baselineFor(results, r);
  let vsBase = '—';
  if (base) {
    if (r.kind === 'saturate' || r.kind === 'burst') vsBase = `rate ${fmtRatio(r.deliveredPerSec / base.deliveredPerSec)}`;
    else if (r.kind === 'hot') vsBase = `events ${fmtRatio(r.delivered / base.delivered)}`;
    else vsBase = `CPU ${fmtRatio(r.cpu.system / base.cpu.system)}`;
  }
  const ceiling = ceilingFor(results, r);
  const vsCeiling = ceiling && r.kind === 'saturate' ? `${(100 * r.deliveredPerSec / ceiling.deliveredPerSec).toFixed(0)}%` : '—';
  return [vsBase, vsCeiling];
}

function orderRows(results, plan) {
  const scenarioOrder = plan.scenarios.map((s) => s.id);
  // Ceilings sit with the saturation scenario of the same subscriber count.
  const position = (r) => {
    if (r.system === 'ceiling') {
      const sat = plan.scenarios.find((s) => s.kind === 'saturate' && s.subs === r.subs);
      return sat ? scenarioOrder.indexOf(sat.id) : 1000;
    }
    return scenarioOrder.indexOf(r.scenario);
  };
  return [...results].sort((a, b) => position(a) - position(b)
    || SYSTEM_ORDER[a.system] - SYSTEM_ORDER[b.system] || Number(a.withWriters) - Number(b.withWriters)
    || (a.batch ?? 0) - (b.batch ?? 0));
}

/** CPU (percent of one core) used by processes that are not part of the benchmark. */
function otherCpu(r, cores) {
  const ours = ['system', 'soketi', 'postgres', 'subscribers0', 'subscribers1', 'load', 'driver']
    .reduce((a, k) => a + (Number.isFinite(r.cpu[k]) ? r.cpu[k] : 0), 0);
  return Math.max(0, (r.cpu.machine * cores) - ours);
}

export function renderReport({ results, quick, startedAt, finishedAt, machine, soketiVersion, coalesceMs, plan, command, bridgeEnv = {} }) {
  const rows = orderRows(results, plan);
  const out = [];
  const minutes = ((finishedAt - startedAt) / 60000).toFixed(1);
  out.push(`### cache-bridge vs. a naive Node.js bridge vs. what Soketi itself takes${quick ? ' (quick run)' : ''}`);
  out.push('');
  out.push(`\`${command}\` — ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${minutes} min; ` +
    `${machine.cores} cores (${machine.model}), ${machine.memGiB} GiB, ${machine.distro}, Linux ${machine.kernel}, ` +
    `PostgreSQL 15, Soketi ${soketiVersion}, Node.js ${machine.node}; load average before the run: ${machine.loadavg}.`);
  const overrides = Object.entries(bridgeEnv);
  if (overrides.length) {
    out.push('');
    out.push(`**Not the defaults**: the bridge ran with ${overrides.map(([k, v]) => `\`${k}=${v}\``).join(', ')}.`);
  }
  out.push('');
  out.push(`> **Everything shares ${machine.cores} cores**: PostgreSQL, Soketi, the pusher-js subscribers, the load ` +
    'generator and the system under test run on one machine, all on 127.0.0.1, so every row measures the whole ' +
    `pipeline on ${machine.cores} cores, not the bridge alone, and loopback TCP charges part of the receiver's kernel ` +
    'work to the sender. The second table shows where the CPU went, including processes outside the benchmark.');
  out.push('');
  out.push('| # | scenario | subs | system | batch | committed | committed/s | delivered/sub | missing | delivered/s | p50 ms | p99 ms | max ms | CPU % | peak RSS MiB | peak RssAnon MiB | bridge/baseline | bridge/ceiling | targets |');
  out.push('|--:|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|');
  const allChecks = [];
  rows.forEach((r, i) => {
    r.row = i + 1;
    const checks = targetsFor(results, r);
    for (const c of checks) allChecks.push({ row: r.row, r, ...c });
    const targetCell = checks.length === 0 ? ''
      : checks.every((c) => c.pass) ? 'PASS'
        : `MISS: ${checks.filter((c) => !c.pass).map((c) => `${c.name} (${c.value})`).join('; ')}`;
    const [vsBase, vsCeiling] = ratioCells(results, r);
    const sysCpu = r.system === 'ceiling' ? '—' : fmtNum(r.cpu.system);
    const rss = r.system === 'ceiling' ? '—' : fmtMiB(r.peakRssBytes);
    const anon = r.system === 'ceiling' ? '—' : fmtMiB(r.peakAnonBytes);
    const missing = r.complete ? '0'
      : `${fmtInt(r.undelivered)} not there ${fmtNum(r.drainCapMs / 1000, 0)} s after the last commit`;
    out.push(`| ${r.row} | ${r.label} | ${r.subs} | ${SYSTEM_LABEL[r.system] ?? r.system} | ${r.batch ?? '—'} | ` +
      `${fmtInt(r.committed)} | ${fmtInt(r.committedPerSec)} | ${fmtInt(r.delivered)} | ${missing} | ${fmtInt(r.deliveredPerSec)} | ` +
      `${fmtMs(r.latency?.p50)} | ${fmtMs(r.latency?.p99)} | ${fmtMs(r.latency?.max)} | ${sysCpu} | ${rss} | ${anon} | ` +
      `${vsBase} | ${vsCeiling} | ${targetCell} |`);
  });
  out.push('');
  const idle = rows.find((r) => r.system === 'bridge' && r.idleRss && Number.isFinite(r.idleRss.anon))?.idleRss;
  if (idle) {
    out.push(`Peak RSS (VmHWM) counts shared-library pages: a freshly started, idle bridge had ${fmtMiB(idle.anon + idle.file)} MiB ` +
      `resident, ${fmtMiB(idle.file)} MiB of it file-backed (libcrypto, libstdc++, libpq, ..., shared with every process that maps them) ` +
      `and ${fmtMiB(idle.anon)} MiB its own heap and stacks. *Peak RssAnon* is the largest anonymous part seen (sampled every 20 ms): what the bridge itself holds.`);
    out.push('');
  }

  const passed = allChecks.filter((c) => c.pass).length;
  out.push(`**Targets** (bridge rows): ${passed} of ${allChecks.length} checks pass.`);
  const missed = allChecks.filter((c) => !c.pass);
  if (missed.length) {
    out.push('');
    out.push('Missed:');
    for (const c of missed) out.push(`- row ${c.row} (${c.r.label}, ${c.r.subs} sub, batch ${c.r.batch}): ${c.name} — measured ${c.value}`);
  }
  out.push('');

  out.push('Where the CPU went, in percent of one core over each row\'s measurement window:');
  out.push('');
  out.push('| # | system under test | Soketi | PostgreSQL | subscribers | load generator | other processes | machine busy | window s | notes |');
  out.push('|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|');
  for (const r of rows) {
    const notes = [];
    if (r.system !== 'ceiling' && r.committed > 0 && Number.isFinite(r.cpu.system)) {
      notes.push(`${fmtInt((r.cpu.system / 100) * r.cpu.wallSeconds / r.committed * 1e6)} µs CPU per notification`);
    }
    if (r.metrics && r.metrics.batches) notes.push(`${fmtNum(r.metrics.events / r.metrics.batches)} events per request`);
    if (r.metrics?.errors) notes.push(`${r.metrics.errors} failed requests, ${r.metrics.retries} retries`);
    if (r.metrics?.coalesced) notes.push(`${fmtInt(r.metrics.coalesced)} notifications coalesced`);
    if (r.kind === 'hot') notes.push(`min gap between hot-key events ${r.hot.minGapMs ?? '—'} ms`);
    if ((r.kind === 'burst' || r.kind === 'saturate' || r.kind === 'ceiling') && r.complete) {
      notes.push(`all delivered ${fmtInt(r.lastAfterCommitMs)} ms after the last ${r.kind === 'ceiling' ? 'accepted request' : 'commit'}`);
    }
    if (r.kind === 'saturate' && r.rateOver === 'writes' && r.deliveredPerSecAfterWrites != null) {
      notes.push(`${fmtInt(r.deliveredPerSecAfterWrites)}/s delivered after the writers stopped`);
    }
    if (r.writerRows != null) notes.push(`${fmtInt(r.writerRows)} rows committed alongside (${fmtInt(r.writerRows / r.writeSeconds)}/s)`);
    if (r.reconnects) notes.push(`${r.reconnects} subscriber reconnects`);
    if (r.replays) notes.push(`${r.replays} replay events (not counted)`);
    if (r.loadErrors) notes.push(`${r.loadErrors} rejected requests (${r.loadFirstError})`);
    if (r.exhausted) notes.push('pre-signed pool used up before the time was');
    if (r.exitedEarly) notes.push('the process exited during the row');
    out.push(`| ${r.row} | ${r.system === 'ceiling' ? '—' : fmtNum(r.cpu.system)} | ${fmtNum(r.cpu.soketi)} | ${fmtNum(r.cpu.postgres)} | ` +
      `${fmtNum((r.cpu.subscribers0 ?? 0) + (r.cpu.subscribers1 ?? 0))} | ${fmtNum(r.cpu.load)} | ${fmtNum(otherCpu(r, machine.cores))} | ` +
      `${fmtNum(r.cpu.machine, 0)}% of ${machine.cores} cores | ${fmtNum(r.cpu.wallSeconds)} | ${notes.join('; ')} |`);
  }
  out.push('');

  const d = (plan.durationMs / 1000).toFixed(0);
  const sat = plan.scenarios.find((s) => s.id === 'saturate');
  out.push('How to read it:');
  out.push('- **Systems.** *bridge*: `build/bridge/cache-bridge`, defaults (coalescing ' +
    `${coalesceMs} ms, 2 requests in flight), batches of up to *batch* events. *baseline*: \`scripts/benchmark/baseline.mjs\`, ` +
    'the hand-written alternative: `pg` LISTEN and one `pusher.trigger()` (official `pusher` package: one HTTP request ' +
    'each) per notification, awaited one after the other. *baseline, fire-and-forget*: the same without awaiting (what ' +
    'an `async` notification handler does). *ceiling*: pre-signed `/batch_events` of *batch* events posted straight to ' +
    `Soketi, ${plan.ceilingInFlight} in flight, one connection per request: what Soketi takes on this machine; *with the ` +
    'writers running*: the same while the saturation writers commit into a table with the trigger (nobody LISTENs), ' +
    'for comparison with the bridge\'s saturation rows, where PostgreSQL shares the cores. ' +
    'Soketi and the bridge are restarted for `SOKETI_EVENT_MAX_BATCH_SIZE` 10 (Soketi\'s default) and 100; every row ' +
    'starts a fresh bridge or baseline process.');
  out.push('- **Scenarios.** Rows go into a table with the project\'s trigger (`cache_invalidation_attach`): one NOTIFY and ' +
    `one store upsert per row, every row a new key. *steady N/s*: N rows a second for ${d} s, each INSERT its own ` +
    `transaction of ceil(N/1000) rows. *saturation*: 4 connections committing 100-row INSERTs back to back` +
    (sat ? ` for ${(sat.durationMs / 1000).toFixed(0)} s (at most ${fmtInt(sat.maxRows)} rows)` : '') + '; with 100 ' +
    'subscribers 3,000 rows (the fan-out of more would not drain in bounded time). *burst*: 20,000 rows in 4 concurrent ' +
    '5,000-row transactions. *hot key*: 2 connections updating one row back to back; the bridge may send one event per ' +
    `${coalesceMs} ms window, plus one.`);
  out.push('- **committed**: rows (hot key: updates) committed; ceiling: events Soketi accepted. **delivered/sub**: events ' +
    'received by the subscriber that received the fewest. **missing**: (key, subscriber) pairs whose final timestamp ' +
    `(from the store) had not arrived ${fmtNum(plan.drainCapMs / 1000, 0)} s after the last commit. **delivered/s**: on steady and ` +
    '1-subscriber saturation rows, events the slowest subscriber received between the first write and the last commit, ' +
    'divided by that time (the rate sustained while the writers run); on the other rows, delivered/sub divided by the ' +
    'time from the first write until every subscriber held every final timestamp.');
  out.push('- **Latency**: receipt at the pusher-js subscriber (Date.now()) − the row\'s write time (column `w`, ' +
    'clock_timestamp() in whole ms inside the writing transaction, carried in the event\'s data; so it includes the rest ' +
    'of the transaction and the commit), ' +
    'over every event at every subscriber. Not for the ceiling, whose events are stamped when signed, before the run.');
  out.push('- **CPU %**: utime+stime from /proc/<pid>/stat over the row\'s window (first write until everything arrived), ' +
    'percent of one core. **peak RSS**: VmHWM from /proc/<pid>/status, reset through /proc/<pid>/clear_refs at the start ' +
    'of the row.');
  out.push('- **bridge/baseline**: delivered/s ratio on saturation and burst rows, events ratio on the hot key, CPU ratio on ' +
    'steady rows. **bridge/ceiling**: delivered/s as a share of the ceiling row (without writers) with the same batch ' +
    'size and subscribers; the targets column adds the share of the ceiling with the writers running. ' +
    '"writer-bound" marks a bridge that delivered as fast as PostgreSQL committed on the shared cores (no backlog): the ' +
    'ceiling, which runs without PostgreSQL, is then out of reach for reasons outside the bridge.');
  out.push('- **missing on a ceiling row** means Soketi outran a subscriber: Soketi 1.6.1 gives each WebSocket 1 MiB of ' +
    'backpressure (`maxBackpressure` in its `dist/server.js`) and ignores `ws.send()`\'s result, so messages to a client ' +
    'more than 1 MiB behind are dropped without closing it.');
  out.push('- With 100 subscribers the 100 pusher-js clients (2 Node.js processes) and Soketi\'s fan-out use most of the ' +
    'machine, so those rows show the pipeline\'s limit on these cores more than the bridge\'s.');
  out.push('');
  return out.join('\n');
}
