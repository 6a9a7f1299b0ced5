// Long-running subscriber for the Next.js side: receives the bridge's cache-invalidate events
// from Soketi with pusher-js and has the app revalidate each changed key through
// POST /api/revalidate (app/api/revalidate/route.js). revalidateTag works only inside the
// Next.js server, and Vercel functions cannot hold a WebSocket, so this runs wherever a
// process may live long: beside the bridge, in a small container, on the host of `next start`.
//
// Environment (names shared with .env where they mean the same thing):
//   SOKETI_APP_KEY        (required) the app's public key
//   SOKETI_HOST           default 127.0.0.1      SOKETI_PORT     default 6001
//   SOKETI_USE_TLS        default false (true: wss://)
//   INVALIDATION_CHANNELS default BRIDGE_CHANNEL or "invalidations"; comma list, needed when
//                         BRIDGE_CHANNEL is a template such as cache-{table}
//   BRIDGE_EVENT          default cache-invalidate
//   BRIDGE_SNAPSHOT_URL   e.g. http://cache-bridge:3001/snapshot; each (re)subscription then
//                         fetches every key's current state, so a restart misses nothing.
//                         Unset: live events and the bridge's replays only (older bridges).
//   REVALIDATE_URL        (required) e.g. https://app.example.com/api/revalidate
//   REVALIDATE_SECRET     (required) the app's REVALIDATE_SECRET
import Pusher from 'pusher-js';
import { subscribeInvalidations } from '../invalidations.mjs';

const env = process.env;
for (const name of ['SOKETI_APP_KEY', 'REVALIDATE_URL', 'REVALIDATE_SECRET']) {
  if (!env[name]) {
    console.error(`worker: ${name} is required`);
    process.exit(1);
  }
}
const kMaxPerRequest = 100; // the route's limit
const kMaxBackoffMs = 30_000;

// Keys waiting to be sent, with their newest invalidatedAt.
const pending = new Map();
let timer = null;
let inFlight = false;
let backoffMs = 0;

// subscribeInvalidations calls this only for a change newer than this process has seen for
// the key (by seq; by invalidatedAt from bridges without seq): live events, replays and
// snapshot entries alike. A fresh process therefore acts on every key it is told about.
function onInvalidate({ cacheKey, invalidatedAt }) {
  pending.set(cacheKey, invalidatedAt);
  schedule(0);
}

function schedule(delayMs) {
  if (timer === null && !inFlight && pending.size > 0) timer = setTimeout(flush, delayMs);
}

async function flush() {
  timer = null;
  inFlight = true;
  const batch = [...pending].slice(0, kMaxPerRequest);
  for (const [cacheKey] of batch) pending.delete(cacheKey);
  try {
    const response = await fetch(env.REVALIDATE_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${env.REVALIDATE_SECRET}` },
      body: JSON.stringify({
        invalidations: batch.map(([cacheKey, invalidatedAt]) => ({ cacheKey, invalidatedAt })),
      }),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    backoffMs = 0;
  } catch (err) {
    // Retry the batch, except keys that a newer event has queued again meanwhile.
    for (const [cacheKey, invalidatedAt] of batch) {
      if (!pending.has(cacheKey)) pending.set(cacheKey, invalidatedAt);
    }
    backoffMs = Math.min(Math.max(2 * backoffMs, 500), kMaxBackoffMs);
    console.error(`worker: revalidate failed (${err.message}); ${pending.size} keys retry in ${backoffMs} ms`);
  } finally {
    inFlight = false;
  }
  schedule(backoffMs);
}

const port = Number(env.SOKETI_PORT || 6001);
const pusher = new Pusher(env.SOKETI_APP_KEY, {
  cluster: 'mt1', // pusher-js requires one; wsHost overrides it
  wsHost: env.SOKETI_HOST || '127.0.0.1',
  wsPort: port,
  wssPort: port,
  forceTLS: env.SOKETI_USE_TLS === 'true',
  enabledTransports: ['ws', 'wss'],
  disableStats: true,
});
pusher.connection.bind('state_change', ({ current }) => console.log(`worker: soketi ${current}`));
const channels = (env.INVALIDATION_CHANNELS || env.BRIDGE_CHANNEL || 'invalidations')
  .split(',').map((name) => name.trim()).filter(Boolean);
for (const name of channels) {
  subscribeInvalidations(pusher, {
    channel: name,
    snapshotUrl: env.BRIDGE_SNAPSHOT_URL || undefined,
    event: env.BRIDGE_EVENT || 'cache-invalidate',
    onInvalidate,
    // Live events keep flowing; the next reconnect fetches the snapshot again.
    onError: (err) => console.error(`worker: ${err.message}`),
  });
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    pusher.disconnect();
    // Give queued keys a moment to go out; a restarted worker catches up from the
    // snapshot (BRIDGE_SNAPSHOT_URL) or, without one, relies on the bridge's replay.
    for (const deadline = Date.now() + 5_000; (pending.size > 0 || inFlight) && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    process.exit(0);
  });
}
