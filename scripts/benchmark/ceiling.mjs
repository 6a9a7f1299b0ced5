// Benchmark ceiling: how fast Soketi itself accepts and delivers cache-invalidate events.
// Posts pre-signed /apps/:id/batch_events requests of exactly SOKETI_EVENT_MAX_BATCH_SIZE
// events (the bridge's event shape and size) straight to Soketi, as fast as Soketi answers,
// with a bounded number in flight, one connection per request (Soketi closes every HTTP API
// connection anyway). `prepare` signs and serializes every request to raw bytes before the
// clock starts, so the generator's own work during `run` is a connect, one write and one read
// per request (node:http's client would cost more CPU than Soketi on a 2-core machine).
//
// Requests (see ipc.mjs):
//   prepare {port, appId, key, secret, channel, table, batchSize, maxEvents} -> {requests, signedAt}
//   run {durationMs, inFlight} -> {committed (events Soketi accepted), requests, errors,
//     firstError, acceptedRequests (indexes; request i carries ids i*batchSize+1 ..
//     (i+1)*batchSize), signedAt (every event's invalidatedAt), firstStart, lastCommit, exhausted}
import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import { serveRequests } from './ipc.mjs';

let prepared = null;

/** Pusher HTTP API signature (auth_version 1.0) for a POST with a body. */
function signedPath({ appId, key, secret, body, timestamp }) {
  const path = `/apps/${appId}/batch_events`;
  const bodyMd5 = createHash('md5').update(body).digest('hex');
  const query = `auth_key=${key}&auth_timestamp=${timestamp}&auth_version=1.0&body_md5=${bodyMd5}`;
  const signature = createHmac('sha256', secret).update(`POST\n${path}\n${query}`).digest('hex');
  return `${path}?${query}&auth_signature=${signature}`;
}

function prepare({ port, appId, key, secret, channel, table, batchSize, maxEvents }) {
  const signedAt = Date.now();
  const timestamp = Math.floor(signedAt / 1000);
  const requests = [];
  for (let first = 1; first <= maxEvents; first += batchSize) {
    const batch = [];
    for (let id = first; id < first + batchSize; id++) {
      const data = JSON.stringify({ cacheKey: `${table}:${id}`, invalidatedAt: signedAt, table,
        action: 'insert', id, data: { id, v: 0 } });
      batch.push({ channel, name: 'cache-invalidate', data });
    }
    const body = Buffer.from(JSON.stringify({ batch }));
    const head = `POST ${signedPath({ appId, key, secret, body, timestamp })} HTTP/1.1\r\n` +
      `Host: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
      'Connection: close\r\n\r\n';
    requests.push(Buffer.concat([Buffer.from(head), body]));
  }
  prepared = { requests, signedAt, batchSize, port };
  return { requests: requests.length, signedAt };
}

/** One request on its own connection; resolves {ok} or {ok: false, error} (never rejects). */
function post(port, request) {
  return new Promise((resolve) => {
    const chunks = [];
    let settled = false;
    const done = (r) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(r);
    };
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(5000, () => done({ ok: false, error: 'timeout' }));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (err) => done({ ok: false, error: err.code || err.message }));
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(text.slice(9, 12));
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      // Soketi 1.6.1 reports API errors as HTTP 200 with {"error": ...} in the body.
      if (status >= 200 && status < 300 && !body.includes('"error"')) done({ ok: true });
      else done({ ok: false, error: `HTTP ${status} ${body.slice(0, 200)}` });
    });
    socket.write(request);
  });
}

async function run({ durationMs, inFlight }) {
  if (!prepared) throw new Error('run before prepare');
  const { requests, signedAt, batchSize, port } = prepared;
  prepared = null;
  const acceptedRequests = [];
  let next = 0, errors = 0, firstError = null, lastCommit = 0;
  const firstStart = Date.now();
  const t0 = performance.now();
  const lane = async () => {
    while (next < requests.length && performance.now() - t0 < durationMs) {
      const index = next++;
      const r = await post(port, requests[index]);
      if (r.ok) {
        acceptedRequests.push(index);
        lastCommit = Date.now();
      } else {
        errors++;
        firstError ??= r.error;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  acceptedRequests.sort((a, b) => a - b);
  return { committed: acceptedRequests.length * batchSize, requests: next, errors, firstError,
    acceptedRequests, signedAt, firstStart, lastCommit, exhausted: next >= requests.length };
}

serveRequests({ prepare, run });
