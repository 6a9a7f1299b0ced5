// TLS end to end: the bridge publishes to a Soketi that speaks https/wss only, and POSTs to an
// https HTTP sink, verifying both servers' certificate (a throwaway self-signed one for
// 127.0.0.1) against SSL_CERT_FILE, as OpenSSL does for a user who points it at their CA. Without
// it the certificate is untrusted: nothing is published, the bridge keeps running and says why.
// Real servers only: PostgreSQL, Soketi (uWS.SSLApp), a node:https receiver, the bridge binary.
//
// Run: node --test --test-concurrency=1 tests/integration/tls.test.mjs
// Needs the bridge binary (CACHE_BRIDGE_BIN) and scripts/install-deps --tests (the openssl CLI).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  freePort, http, httpSinkSignature, isInvalidation, isLiveInvalidation, metricValue, startStack, tempDir, waitUntil,
} from './harness.mjs';

const SINK_SECRET = 'it-tls-sink-secret-3b9d27';

// OpenSSL reads SSL_CERT_FILE / SSL_CERT_DIR from the bridge's environment, which the harness
// passes on (it strips only the bridge's and Soketi's own keys). Dropped here, so that each
// bridge trusts what its test gives it: the test's certificate, or OpenSSL's default store.
delete process.env.SSL_CERT_FILE;
delete process.env.SSL_CERT_DIR;

/** A self-signed certificate for 127.0.0.1 (no CA): {certFile, keyFile, cert, key} (PEM). */
function selfSignedCert(dir) {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'pipe', timeout: 30000 });
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

/** An https receiver on 127.0.0.1 that records every request and answers 200: {url, requests, close()}. */
async function startHttpsSink({ key, cert }) {
  const requests = [];
  const server = createServer({ key, cert }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body, receivedAt: Date.now() });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${port}/hook`,
    requests,
    /** The POSTs whose body lists an invalidation of cacheKey. */
    postsOf: (cacheKey) => requests.filter((r) => {
      try {
        return JSON.parse(r.body).invalidations.some((i) => i.cacheKey === cacheKey);
      } catch {
        return false;
      }
    }),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Whether a request carries X-Cache-Bridge-Signature v1=<hex HMAC-SHA256 of "<timestamp>.<body>">. */
function signatureVerifies(request, secret) {
  const timestamp = request.headers['x-cache-bridge-timestamp'];
  const expected = Buffer.from(httpSinkSignature(secret, timestamp, request.body));
  const got = Buffer.from(String(request.headers['x-cache-bridge-signature'] ?? ''));
  return got.length === expected.length && timingSafeEqual(got, expected);
}

describe('TLS: https to Soketi and to the HTTP sink', () => {
  let dir;
  let pem;
  let stack;
  let db;
  let sink;
  const tlsEnv = () => ({ SOKETI_USE_TLS: 'true', BRIDGE_HTTP_SINK_URL: sink.url, BRIDGE_HTTP_SINK_SECRET: SINK_SECRET });

  before(async () => {
    dir = tempDir('cache-bridge-tls-');
    pem = selfSignedCert(dir);
    stack = await startStack({ soketi: { tls: { cert: pem.certFile, key: pem.keyFile } } });
    db = stack.pg;
    await db.query('CREATE TABLE items (id text PRIMARY KEY, name text)');
    await db.attach('items', 'id');
    sink = await startHttpsSink(pem);
  });
  after(async () => {
    await stack?.stop();
    await sink?.close();
  });

  test('with SSL_CERT_FILE: a change reaches a wss subscriber through https, and the https sink as a signed POST', async (t) => {
    // Soketi's port speaks TLS only: what the subscriber gets below came through https.
    await assert.rejects(http(`http://127.0.0.1:${stack.soketi.port}/`, { timeoutMs: 2000 }), 'plain http to Soketi fails');
    // Ready (startBridge's default): the bridge's probe of Soketi's API over https succeeded.
    const bridge = await stack.useBridge(tlsEnv(), { processEnv: { SSL_CERT_FILE: pem.certFile } });
    assert.match((await http(`${stack.opsUrl}/readyz`)).text, /^ready: active/);
    const sub = await stack.subscribe('invalidations'); // wss, trusting the test's certificate
    t.after(() => sub.disconnect());

    await db.query(`INSERT INTO items VALUES ('tls-1', 'first')`);
    const e = await sub.waitFor(isLiveInvalidation('items:tls-1'), 10000);
    assert.equal(e.event, 'cache-invalidate');
    assert.equal(e.data.cacheKey, 'items:tls-1');

    const [post] = await waitUntil(() => sink.postsOf('items:tls-1').length && sink.postsOf('items:tls-1'), 10000,
      { message: 'the https sink received a POST listing items:tls-1' });
    assert.equal(post.method, 'POST');
    assert.equal(post.url, '/hook');
    assert.match(post.headers['content-type'], /^application\/json/);
    assert.ok(Math.abs(Date.now() / 1000 - Number(post.headers['x-cache-bridge-timestamp'])) < 60,
      `X-Cache-Bridge-Timestamp is now: ${post.headers['x-cache-bridge-timestamp']}`);
    assert.ok(signatureVerifies(post, SINK_SECRET), `X-Cache-Bridge-Signature verifies: ${JSON.stringify(post.headers)}`);
    const inv = JSON.parse(post.body).invalidations.find((i) => i.cacheKey === 'items:tls-1');
    assert.equal(typeof inv.invalidatedAt, 'number', `the body lists the invalidation: ${post.body}`);

    assert.doesNotMatch(bridge.text(), /TLS handshake failed/, 'no TLS trouble in the log');
  });

  test('without SSL_CERT_FILE the certificate is untrusted: nothing is published, the bridge keeps running and says why', async (t) => {
    const bridge = await stack.useBridge(tlsEnv(), { ready: /HTTP: \/healthz/ });
    const sub = await stack.subscribe('invalidations');
    t.after(() => sub.disconnect());
    const mark = bridge.mark();
    const postsBefore = sink.requests.length;

    // /readyz: 503 with the reason, once the background probe of Soketi has failed.
    const readyz = await waitUntil(async () => {
      const r = await http(`${stack.opsUrl}/readyz`, { timeoutMs: 2000 });
      return r.status === 503 && /TLS handshake failed/.test(r.text) && r;
    }, 15000, { message: '/readyz 503 naming the TLS handshake' });
    assert.match(readyz.text, /Soketi unreachable at https:\/\/127\.0\.0\.1:\d+.*the TLS handshake failed \(https where the peer speaks http, or its certificate\)/);

    await db.query(`INSERT INTO items VALUES ('tls-2', 'untrusted')`);
    // The log: publishing to Soketi fails on the handshake and is retried. (The HTTP sink gets
    // a change only once Soketi has it, so it is not tried at all.)
    await bridge.waitForLine(/Soketi: publishing \d+ event\(s\) failed \(.*the TLS handshake failed .*\); retrying/, 15000, { since: mark });
    // Two more attempts (the backoff starts at 100 ms), not a pause hoped to be long enough.
    const retries = async () => metricValue((await http(`${stack.opsUrl}/metrics`)).text, 'cache_bridge_publish_retries_total') ?? 0;
    const retriedBefore = await retries();
    await waitUntil(async () => (await retries()) >= retriedBefore + 2, 15000, { message: 'two more retries' });
    assert.ok(bridge.running(), `the bridge keeps running:\n${bridge.output(mark)}`);
    assert.equal((await http(`${stack.opsUrl}/healthz`)).status, 200);
    assert.equal(sub.events.filter(isInvalidation('items:tls-2')).length, 0, `nothing reached the subscriber:\n${sub.describe()}`);
    assert.equal(sink.requests.length, postsBefore, 'nothing reached the sink');
    t.diagnostic(`readyz: ${readyz.text.trim()}`);
  });
});
