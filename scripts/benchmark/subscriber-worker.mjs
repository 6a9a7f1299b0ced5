// Benchmark subscriber process: holds N real pusher-js clients subscribed to one channel and
// keeps, per client, the newest invalidatedAt received for each key of the scenario, so the
// driver can tell when every key's final timestamp reached every subscriber. Latency
// (receipt minus the row's write time, data.data.w or the baseline's data.writtenAt, else
// data.invalidatedAt; whole ms) goes into one histogram per process.
//
// Keys must look like "<table>:<integer id>" (the benchmark's tables and the ceiling's events).
// Requests (see ipc.mjs): connect {port, key, channel, count}, start {table, timeline},
// expect {ids, ts}, status, finish {window: [from, to]}, disconnect.
import { createRequire } from 'node:module';
import { serveRequests } from './ipc.mjs';

const require = createRequire(import.meta.url);
const PusherClient = require('pusher-js');

const HIST_MAX_MS = 60000; // last bucket: >= 60 s
const SLOT_MS = 10; // receipts are also counted per 10 ms since start, for windowed rates
const SLOTS = 18000; // 180 s; later receipts count in the last slot
const EVENT = 'cache-invalidate';

const clients = []; // {pusher, stats}
let scenario = null; // {prefix, base, hist, latMax, timeline, expected: Int32Array|null, expectedIds}

function newStats(capacity = 1024) {
  return { events: 0, replays: 0, maxTs: new Int32Array(capacity), recvAt: new Int32Array(capacity),
    first: 0, last: 0, satisfied: 0, satisfiedAt: 0, timeline: null, slots: new Uint32Array(SLOTS) };
}

function grow(stats, id) {
  let n = stats.maxTs.length;
  while (n <= id) n *= 2;
  const maxTs = new Int32Array(n);
  maxTs.set(stats.maxTs);
  const recvAt = new Int32Array(n);
  recvAt.set(stats.recvAt);
  stats.maxTs = maxTs;
  stats.recvAt = recvAt;
}

function onEvent(stats, event, data) {
  const s = scenario;
  if (!s || event !== EVENT || !data || typeof data.cacheKey !== 'string' || !data.cacheKey.startsWith(s.prefix)) return;
  if (data.replay === true) {
    stats.replays++;
    return;
  }
  const now = Date.now();
  stats.events++;
  if (!stats.first) stats.first = now;
  stats.last = now;
  const latency = now - (data.data?.w ?? data.writtenAt ?? data.invalidatedAt);
  s.hist[Math.max(0, Math.min(HIST_MAX_MS, latency))]++;
  if (latency > s.latMax) s.latMax = latency;
  stats.slots[Math.min(SLOTS - 1, Math.floor((now - s.startedAt) / SLOT_MS))]++;
  if (stats.timeline) stats.timeline.push(now);
  const id = Number(data.cacheKey.slice(s.prefix.length));
  if (!Number.isInteger(id) || id < 0) return;
  if (id >= stats.maxTs.length) grow(stats, id);
  const ts = data.invalidatedAt - s.base;
  const before = stats.maxTs[id];
  if (ts <= before) return;
  stats.maxTs[id] = ts;
  stats.recvAt[id] = now - s.base;
  const want = s.expected && id < s.expected.length ? s.expected[id] : 0;
  if (want > 0 && ts >= want && before < want) {
    stats.satisfied++;
    if (now > stats.satisfiedAt) stats.satisfiedAt = now;
  }
}

async function connectOne({ port, key, channel, timeoutMs }) {
  const pusher = new PusherClient(key, {
    wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
    cluster: 'mt1', disableStats: true,
  });
  const entry = { pusher, stats: newStats(), reconnects: 0 };
  const ch = pusher.subscribe(channel);
  ch.bind_global((event, data) => onEvent(entry.stats, event, data));
  let wasConnected = false;
  pusher.connection.bind('state_change', ({ current }) => {
    if (current === 'connected') {
      if (wasConnected) entry.reconnects++;
      wasConnected = true;
    }
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`subscribing to ${channel} timed out after ${timeoutMs} ms`)), timeoutMs);
    ch.bind('pusher:subscription_succeeded', () => { clearTimeout(timer); resolve(); });
    ch.bind('pusher:subscription_error', (st) => { clearTimeout(timer); reject(new Error(`subscription_error ${JSON.stringify(st)}`)); });
  }).catch((err) => {
    pusher.disconnect();
    throw err;
  });
  return entry;
}

function disconnectOne(entry) {
  try {
    entry.pusher.disconnect();
  } catch {
    /* gone */
  }
}

serveRequests({
  /** Adds or removes clients until `count` are subscribed to `channel`. */
  async connect({ port, key, channel, count, timeoutMs = 15000 }) {
    while (clients.length > count) disconnectOne(clients.pop());
    while (clients.length < count) {
      const batch = Math.min(10, count - clients.length);
      const added = await Promise.all(Array.from({ length: batch }, () => connectOne({ port, key, channel, timeoutMs })));
      clients.push(...added);
    }
    return { clients: clients.length };
  },

  /** Starts counting events whose cacheKey begins with `<table>:`; resets every statistic. */
  start({ table, timeline = false }) {
    const startedAt = Date.now();
    scenario = { prefix: `${table}:`, startedAt, base: startedAt - 600000, hist: new Uint32Array(HIST_MAX_MS + 1),
      latMax: 0, expected: null, expectedCount: 0 };
    clients.forEach((c, i) => {
      c.stats = newStats();
      c.reconnectsAtStart = c.reconnects;
      if (timeline && i === 0) c.stats.timeline = [];
    });
    return { clients: clients.length };
  },

  /** The final timestamp (epoch ms) of every key: ids[i] must end up with ts[i] or newer. */
  expect({ ids, ts }) {
    const s = scenario;
    let maxId = 0;
    for (const id of ids) if (id > maxId) maxId = id;
    s.expected = new Int32Array(maxId + 1);
    for (let i = 0; i < ids.length; i++) s.expected[ids[i]] = ts[i] - s.base;
    s.expectedCount = ids.length;
    for (const { stats } of clients) {
      stats.satisfied = 0;
      stats.satisfiedAt = 0;
      for (const id of ids) {
        if (id < stats.maxTs.length && stats.maxTs[id] >= s.expected[id]) {
          stats.satisfied++;
          const at = stats.recvAt[id] + s.base;
          if (at > stats.satisfiedAt) stats.satisfiedAt = at;
        }
      }
    }
    return { expected: ids.length };
  },

  status() {
    let minEvents = Infinity, minSatisfied = Infinity, satisfiedAt = 0, last = 0, events = 0;
    for (const { stats } of clients) {
      minEvents = Math.min(minEvents, stats.events);
      minSatisfied = Math.min(minSatisfied, stats.satisfied);
      satisfiedAt = Math.max(satisfiedAt, stats.satisfiedAt);
      last = Math.max(last, stats.last);
      events += stats.events;
    }
    return { clients: clients.length, minEvents, minSatisfied, events, satisfiedAt, last,
      expected: scenario?.expectedCount ?? 0 };
  },

  /** window: [from, to] epoch ms: each client's events received within it (10 ms granularity). */
  finish({ window }) {
    const s = scenario;
    const hist = [];
    s.hist.forEach((n, ms) => { if (n) hist.push([ms, n]); });
    const fromSlot = Math.max(0, Math.ceil((window[0] - s.startedAt) / SLOT_MS));
    const toSlot = Math.min(SLOTS, Math.floor((window[1] - s.startedAt) / SLOT_MS));
    const inWindow = (slots) => {
      let n = 0;
      for (let i = fromSlot; i < toSlot; i++) n += slots[i];
      return n;
    };
    const perClient = clients.map(({ stats, reconnects, reconnectsAtStart }) => ({
      events: stats.events, windowEvents: inWindow(stats.slots), replays: stats.replays,
      missing: s.expectedCount - stats.satisfied,
      first: stats.first, last: stats.last, satisfiedAt: stats.satisfiedAt,
      reconnects: reconnects - (reconnectsAtStart ?? 0),
    }));
    const timeline = clients[0]?.stats.timeline ?? null;
    return { perClient, hist, latMax: s.latMax, timeline, windowMs: Math.max(0, toSlot - fromSlot) * SLOT_MS };
  },

  disconnect() {
    while (clients.length) disconnectOne(clients.pop());
    return {};
  },
});
