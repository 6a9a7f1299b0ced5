// Benchmark writer process: commits rows into a table that has the project's trigger, so
// every row is one NOTIFY on cache_invalidation and one upsert into the store. Runs apart
// from the driver so its pacing does not depend on the driver's event loop.
//
// Requests (see ipc.mjs):
//   open {url, connections}       opens the connections (kept across runs)
//   run {table, mode, ...}        one load, every loop bounded by durationMs:
//     mode 'rate'      {rate, durationMs}: `rate` new rows a second, each INSERT its own
//                      transaction of ceil(rate/1000) rows (more only to catch up), new keys only
//     mode 'saturate'  {rowsPerTx, durationMs, maxRows}: every connection commits INSERTs of
//                      rowsPerTx new rows back to back, until durationMs or maxRows rows
//     mode 'burst'     {rows, transactions}: `rows` new rows in `transactions` concurrent INSERTs
//     mode 'hot'       {durationMs, row, connections}: `connections` connections update the one
//                      row whose id is `row`, back to back
//   Result: {committed (rows or updates), transactions, firstStart, lastCommit (epoch ms)}
import { createRequire } from 'node:module';
import { serveRequests } from './ipc.mjs';

const require = createRequire(import.meta.url);
const pg = require('pg');

const MAX_ROWS_PER_TX = 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let conns = [];

async function insertRows(conn, table, from, count) {
  await conn.query(`INSERT INTO ${table} (id, v) SELECT g, 0 FROM generate_series($1::bigint, $2::bigint) g`,
    [from, from + count - 1]);
}

async function runRate({ table, rate, durationMs }) {
  const perTx = Math.max(1, Math.ceil(rate / 1000));
  const total = Math.round((rate * durationMs) / 1000);
  const free = [...conns];
  const inFlight = new Set();
  let issued = 0, committed = 0, txs = 0, lastCommit = 0;
  let wake = null;
  const firstStart = Date.now();
  const t0 = performance.now();
  // Hard bound: the schedule plus 10 s for stragglers.
  while (committed < total && performance.now() - t0 < durationMs + 10000) {
    const due = Math.min(total, Math.floor((rate * (performance.now() - t0)) / 1000)) - issued;
    if (due > 0 && free.length) {
      const n = Math.min(due, MAX_ROWS_PER_TX, Math.max(perTx, Math.ceil(due / free.length)));
      const conn = free.pop();
      const from = issued + 1;
      issued += n;
      const p = insertRows(conn, table, from, n).then(() => {
        committed += n;
        txs++;
        lastCommit = Date.now();
      }).finally(() => {
        free.push(conn);
        inFlight.delete(p);
        if (wake) wake();
      });
      inFlight.add(p);
      continue;
    }
    // Next row due, or a connection coming back, whichever is first.
    await Promise.race([sleep(1), new Promise((r) => { wake = r; })]);
    wake = null;
  }
  await Promise.allSettled([...inFlight]);
  return { committed, transactions: txs, firstStart, lastCommit };
}

async function runSaturate({ table, rowsPerTx, durationMs, maxRows }) {
  const cap = maxRows ?? Infinity; // IPC turns Infinity into null
  let next = 1, committed = 0, txs = 0, lastCommit = 0;
  const firstStart = Date.now();
  const t0 = performance.now();
  await Promise.all(conns.map(async (conn) => {
    while (performance.now() - t0 < durationMs && next + rowsPerTx - 1 <= cap) {
      const from = next;
      next += rowsPerTx;
      await insertRows(conn, table, from, rowsPerTx);
      committed += rowsPerTx;
      txs++;
      lastCommit = Date.now();
    }
  }));
  return { committed, transactions: txs, firstStart, lastCommit };
}

async function runBurst({ table, rows, transactions }) {
  const per = Math.ceil(rows / transactions);
  let committed = 0, lastCommit = 0;
  const firstStart = Date.now();
  await Promise.all(Array.from({ length: transactions }, async (_, i) => {
    const from = i * per + 1;
    const n = Math.min(per, rows - i * per);
    await insertRows(conns[i % conns.length], table, from, n);
    committed += n;
    lastCommit = Date.now();
  }));
  return { committed, transactions, firstStart, lastCommit };
}

async function runHot({ table, row, durationMs, connections }) {
  let committed = 0, lastCommit = 0;
  const firstStart = Date.now();
  const t0 = performance.now();
  await Promise.all(conns.slice(0, connections ?? conns.length).map(async (conn) => {
    while (performance.now() - t0 < durationMs) {
      await conn.query(`UPDATE ${table} SET v = v + 1, w = (extract(epoch FROM clock_timestamp()) * 1000)::bigint WHERE id = $1`, [row]);
      committed++;
      lastCommit = Date.now();
    }
  }));
  return { committed, transactions: committed, firstStart, lastCommit };
}

serveRequests({
  async open({ url, connections }) {
    for (const c of conns) await c.end().catch(() => {});
    conns = [];
    for (let i = 0; i < connections; i++) {
      const c = new pg.Client({ connectionString: url, application_name: 'bench-writer', connectionTimeoutMillis: 5000 });
      c.on('error', () => {});
      await c.connect();
      // The session's statements must not hang the benchmark.
      await c.query('SET statement_timeout = 60000');
      conns.push(c);
    }
    return { connections: conns.length };
  },
  async run(msg) {
    if (!/^[a-z_][a-z0-9_]*$/.test(msg.table)) throw new Error(`bad table name ${msg.table}`);
    switch (msg.mode) {
      case 'rate': return runRate(msg);
      case 'saturate': return runSaturate(msg);
      case 'burst': return runBurst(msg);
      case 'hot': return runHot(msg);
      default: throw new Error(`unknown mode ${msg.mode}`);
    }
  },
}, {
  onDisconnect: async () => {
    await Promise.allSettled(conns.map((c) => c.end()));
    process.exit(0);
  },
});
