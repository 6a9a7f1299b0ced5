#!/usr/bin/env node
// BENCHMARK REFERENCE ONLY — not part of the product.
//
// The program a user would write instead of running cache-bridge: LISTEN on cache_invalidation
// with `pg`, and call `pusher.trigger()` of the official `pusher` package once per
// notification. No batching, no coalescing, no store, no replay, no retries: the naive
// version, kept deliberately plain so that scripts/bench can compare the bridge against it.
//
//   DATABASE_URL=postgresql://... SOKETI_APP_ID=... SOKETI_APP_KEY=... SOKETI_APP_SECRET=... \
//   SOKETI_HOST=127.0.0.1 SOKETI_PORT=6001 BRIDGE_CHANNEL=invalidations \
//   [BASELINE_MODE=sequential|unbounded] node scripts/benchmark/baseline.mjs
//
// BASELINE_MODE (default sequential):
//   sequential  each trigger() waits for the previous one (a promise chain): in order, and one
//               HTTP request in flight, so it never overloads itself.
//   unbounded   fire and forget: every notification starts its trigger() at once — what an
//               `async` notification handler does. A large burst opens one socket per
//               notification at the same time (and runs out of file descriptors: EMFILE).
//
// Prints "baseline: listening" once LISTEN is active; logs (at most one line a second) how
// many trigger() calls failed.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pg = require('pg');
const Pusher = require('pusher');

const env = process.env;
const channel = env.BRIDGE_CHANNEL || 'invalidations';
const mode = env.BASELINE_MODE || 'sequential';
if (mode !== 'sequential' && mode !== 'unbounded') {
  console.error(`baseline: BASELINE_MODE must be sequential or unbounded, not ${mode}`);
  process.exit(2);
}
const pusher = new Pusher({
  appId: env.SOKETI_APP_ID,
  key: env.SOKETI_APP_KEY,
  secret: env.SOKETI_APP_SECRET,
  host: env.SOKETI_HOST || '127.0.0.1',
  port: String(env.SOKETI_PORT || 6001),
  useTLS: false,
});

let failed = 0;
let lastReport = 0;
const reportFailure = (err) => {
  failed++;
  const now = Date.now();
  if (now - lastReport >= 1000) {
    lastReport = now;
    const cause = err.error ? `: ${err.error.code || err.error.message}` : err.status ? `: HTTP ${err.status}` : '';
    console.error(`baseline: ${failed} trigger() call(s) failed so far; last: ${err.message}${cause}`);
  }
};

// The payload carries no timestamp (one taken in the transaction precedes the commit): stamp at
// receipt, as a user would. writtenAt is the benchmark's own measuring point (the row's w).
const invalidate = (n) => pusher.trigger(channel, 'cache-invalidate',
  { cacheKey: n.cache_key, invalidatedAt: n.received_at, writtenAt: n.data?.w });
let chain = Promise.resolve();

const client = new pg.Client({ connectionString: env.DATABASE_URL });
client.on('error', (err) => {
  console.error(`baseline: PostgreSQL connection lost: ${err.message}`);
  process.exit(1);
});
client.on('notification', (msg) => {
  const n = JSON.parse(msg.payload);
  n.received_at = Date.now();
  if (mode === 'unbounded') invalidate(n).catch(reportFailure);
  else chain = chain.then(() => invalidate(n)).catch(reportFailure);
});

await client.connect();
await client.query('LISTEN cache_invalidation');
console.log(`baseline: listening (${mode})`);

// Exit at once: requests still queued are abandoned, as a crashed or redeployed process would.
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
