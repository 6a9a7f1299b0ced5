// Process and machine accounting from /proc for scripts/bench: CPU time (utime+stime),
// peak RSS (VmHWM, resettable through clear_refs) and whole-machine busy time.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

// USER_HZ: 100 on every Linux the project targets (the kernel ABI fixes it for /proc).
export const CLOCK_TICKS = 100;

function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system) used by pid so far; with children: + reaped children's time. */
export function cpuSeconds(pid, { reapedChildren = false } = {}) {
  try {
    const f = statFields(pid);
    // f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    let ticks = Number(f[11]) + Number(f[12]);
    if (reapedChildren) ticks += Number(f[13]) + Number(f[14]);
    return ticks / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** CPU seconds of pid and every live descendant, plus what reaped descendants used. */
export function treeCpuSeconds(rootPid) {
  const parentOf = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      parentOf.set(Number(name), Number(statFields(name)[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const inTree = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (!inTree.has(pid) && inTree.has(ppid)) {
        inTree.add(pid);
        grew = true;
      }
    }
  }
  let total = 0;
  for (const pid of inTree) {
    const s = cpuSeconds(pid, { reapedChildren: true });
    if (Number.isFinite(s)) total += s;
  }
  return total;
}

/** Peak resident set size of pid in bytes (VmHWM), or NaN. */
export function peakRssBytes(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** {anon, file} resident bytes of pid right now (RssAnon, RssFile), or NaNs. */
export function rssParts(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm'))?.[1]) * 1024;
    return { anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return { anon: NaN, file: NaN };
  }
}

/** Resets pid's VmHWM to its current RSS (Linux >= 4.0; needs permission over pid). */
export function resetPeakRss(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Whole machine: {busy, total} CPU seconds summed over all cores since boot. */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const idle = v[3] + v[4];
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

/**
 * Starts a CPU meter over a set of named pids (or {tree: pid} roots).
 * stop() returns {name: percent of one core} over the wall time between start and stop,
 * plus `machine`: busy percent of the whole machine (100% = every core busy).
 */
export function cpuMeter(targets) {
  const read = () => {
    const out = {};
    for (const [name, t] of Object.entries(targets)) {
      if (t == null) continue;
      out[name] = typeof t === 'object' ? treeCpuSeconds(t.tree) : cpuSeconds(t);
    }
    return out;
  };
  const t0 = performance.now();
  const before = read();
  const m0 = machineCpu();
  return {
    stop() {
      const wall = (performance.now() - t0) / 1000;
      const after = read();
      const m1 = machineCpu();
      const out = { wallSeconds: wall };
      for (const name of Object.keys(before)) out[name] = (100 * (after[name] - before[name])) / wall;
      out.machine = (100 * (m1.busy - m0.busy)) / (m1.total - m0.total);
      return out;
    },
  };
}

/**
 * Samples pid's RssAnon every `intervalMs` (the kernel keeps no high-water mark of the anonymous
 * part alone). stop() returns the largest seen, in bytes (NaN when nothing could be read).
 */
export function anonPeakSampler(pid, intervalMs = 20) {
  let peak = NaN;
  const sample = () => {
    const { anon } = rssParts(pid);
    if (Number.isFinite(anon) && !(anon <= peak)) peak = anon;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}
