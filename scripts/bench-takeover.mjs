#!/usr/bin/env node
// Issue 10's takeover benchmark (scripts/bench-takeover builds, then runs this): how long the
// standby of an active/standby pair takes to take over when the active bridge is SIGKILLed,
// against a private PostgreSQL 15 cluster, a real Soketi and a real pusher-js subscriber,
// with a steady writer committing distinct keys.
//
//   node scripts/bench-takeover.mjs [--kills N] [--source notify|wal|both] [--rate N] [--out PATH]
//
// Each kill: SIGKILL the active bridge; "active" is the time until the survivor's /metrics says
// cache_bridge_role{role="active"} 1 (polled every 10 ms); "delivered" the time until the
// subscriber received the first change committed after the kill. The killed bridge is started
// again as the new standby before the next kill. At the end every committed change must have
// reached the subscriber (missing ones are reported); duplicates (changes re-published from the
// cursor or the slot after a takeover) are counted.
//
// Process layout: PostgreSQL, Soketi and the bridges are child processes
// (tests/integration/harness.mjs kills them on exit or Ctrl-C and removes the temp dirs).

import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `usage: node scripts/bench-takeover.mjs [--kills N] [--source notify|wal|both] [--rate N] [--out PATH]
  --kills N       SIGKILLs of the active bridge per source (default 10)
  --source S      notify, wal or both (default both)
  --rate N        the writer's commits per second, one distinct key each (default 50)
  --out PATH      where the Markdown goes too (default .local/bench-takeover.md)
Prints takeover times (p50, max) per source: until the survivor reports active, and until the
first change committed after the kill reaches a pusher-js subscriber.`;

function parseArgs(argv) {
  const o = { kills: 10, sources: ['notify', 'wal'], rate: 50, out: path.join(repoRoot, '.local', 'bench-takeover.md') };
  const num = (a, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) die(`${a} needs a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--kills') o.kills = num(a, argv[++i]);
    else if (a === '--rate') o.rate = num(a, argv[++i]);
    else if (a === '--out') o.out = path.resolve(argv[++i] ?? '');
    else if (a === '--source') {
      const v = argv[++i];
      if (v === 'both') o.sources = ['notify', 'wal'];
      else if (v === 'notify' || v === 'wal') o.sources = [v];
      else die('--source: notify, wal or both');
    } else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else die(`unknown argument ${a}\n${USAGE}`);
  }
  return o;
}

function die(msg) {
  console.error(`bench-takeover: ${msg}`);
  process.exit(2);
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function runSource(H, src, o) {
  const { http, sleep, startStack, waitUntil } = H;
  const stack = await startStack({ source: src });
  try {
    const db = stack.pg;
    await db.query('CREATE TABLE bench_w (id bigint PRIMARY KEY)');
    await db.attach('bench_w', 'id');
    const role = async (b) => {
      const m = await http(`${b.opsUrl}/metrics`, { timeoutMs: 2000 }).catch(() => undefined);
      return m?.text.includes('cache_bridge_role{role="active"} 1') ? 'active' : 'standby';
    };
    const start = async () => stack.startBridge(await stack.ownPorts());
    let active = await start();
    await waitUntil(async () => (await role(active)) === 'active', 15000, { message: 'the first bridge active' });
    let standby = await start();
    await standby.waitForLine(/standby: another bridge holds/, 15000);

    const sub = await stack.subscribe('invalidations');
    const seen = new Map(); // cacheKey -> count of live events
    const firstSeenAt = new Map();
    const listen = () => {
      for (const e of sub.events.splice(0)) {
        if (e.event !== 'cache-invalidate' || e.data?.replay === true) continue;
        seen.set(e.data.cacheKey, (seen.get(e.data.cacheKey) ?? 0) + 1);
        if (!firstSeenAt.has(e.data.cacheKey)) firstSeenAt.set(e.data.cacheKey, e.receivedAt);
      }
    };
    const listener = setInterval(listen, 20);

    // The writer: one distinct key per commit, paced at o.rate.
    const committed = []; // {id, at}
    let writing = true;
    let nextId = 1;
    const writer = (async () => {
      const t0 = Date.now();
      while (writing) {
        const id = nextId++;
        await db.query('INSERT INTO bench_w VALUES ($1)', [id]);
        committed.push({ id, at: Date.now() });
        const due = t0 + (committed.length * 1000) / o.rate;
        if (due > Date.now()) await sleep(due - Date.now());
      }
    })();

    const kills = [];
    await sleep(2000);
    for (let k = 0; k < o.kills; k++) {
      const killedAt = Date.now();
      await active.stop({ signal: 'SIGKILL' });
      const activeMs = await waitUntil(async () => ((await role(standby)) === 'active' ? Date.now() - killedAt : 0),
        60000, { intervalMs: 10, message: 'the standby active' });
      const after = await waitUntil(() => committed.find((c) => c.at > killedAt), 10000, { message: 'a commit after the kill' });
      const key = `bench_w:${after.id}`;
      await waitUntil(() => { listen(); return firstSeenAt.has(key); }, 60000, { intervalMs: 10, message: `${key} delivered` });
      const deliveredMs = firstSeenAt.get(key) - killedAt;
      kills.push({ activeMs, deliveredMs });
      console.error(`bench-takeover: ${src} kill ${k + 1}/${o.kills}: active after ${activeMs} ms, ` +
        `first change after the kill delivered after ${deliveredMs} ms`);
      // The survivor is the active one now; the killed one comes back as the standby.
      active = standby;
      standby = await start();
      await standby.waitForLine(/standby: another bridge holds/, 15000);
      // At a random moment of the standby's 1 s poll, so the kills sample all of it.
      await sleep(1000 + Math.random() * 1000);
    }
    writing = false;
    await writer;
    const keys = committed.map((c) => `bench_w:${c.id}`);
    await waitUntil(() => { listen(); return keys.every((k) => seen.has(k)); }, 60000, { intervalMs: 200, message: 'every change delivered' })
      .catch(() => {});
    clearInterval(listener);
    listen();
    const missing = keys.filter((k) => !seen.has(k)).length;
    let duplicates = 0;
    for (const k of keys) duplicates += Math.max(0, (seen.get(k) ?? 0) - 1);
    await sub.disconnect();
    return { src, kills, changes: keys.length, missing, duplicates };
  } finally {
    await stack.stop();
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const H = await import('../tests/integration/harness.mjs');
  const results = [];
  for (const src of o.sources) results.push(await runSource(H, src, o));
  const lines = [
    `## Takeover after SIGKILL of the active bridge (${o.kills} kills per source, writer at ${o.rate} commits/s)`,
    '',
    '| source | to active: p50 | max | first new change delivered: p50 | max | changes | missing | duplicates |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const a = r.kills.map((x) => x.activeMs);
    const d = r.kills.map((x) => x.deliveredMs);
    lines.push(`| ${r.src} | ${quantile(a, 0.5)} ms | ${Math.max(...a)} ms | ${quantile(d, 0.5)} ms | ${Math.max(...d)} ms | ` +
      `${r.changes} | ${r.missing} | ${r.duplicates} |`);
  }
  const text = `${lines.join('\n')}\n`;
  process.stdout.write(text);
  mkdirSync(path.dirname(o.out), { recursive: true });
  writeFileSync(o.out, text);
  if (results.some((r) => r.missing > 0)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`bench-takeover: ${err.stack ?? err}`);
  process.exit(1);
});
