// Headless Chromium for the integration tests, and a small static server for their pages.
//
// Chromium is Debian's (`apt-get install chromium`, done by scripts/install-deps), driven by
// playwright-core from scripts/node_modules: nothing here downloads a browser. Override the
// binary with CHROMIUM_BIN. A Chromium that cannot start makes the test fail, saying why and
// how to install it; it never skips.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';

import { freePort, repoRoot, withTimeout } from './harness.mjs';

const requireScripts = createRequire(path.join(repoRoot, 'scripts', 'package.json'));

export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/**
 * Launches headless Chromium. Returns {browser, newPage(), close()}; newPage() opens a page in
 * a fresh context (no shared storage) and collects its console errors and uncaught page errors
 * in page.problems. Throws a clear error if playwright-core or Chromium is missing or fails.
 */
export async function launchChromium({ timeoutMs = 30000 } = {}) {
  let chromium;
  try {
    ({ chromium } = requireScripts('playwright-core'));
  } catch (err) {
    throw new Error(`playwright-core is not installed in scripts/node_modules (run scripts/install-deps --tests): ${err.message}`);
  }
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM_BIN,
      headless: true,
      timeout: timeoutMs,
      // As root (CI) Chromium refuses to start with its sandbox; the pages are our own.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
  } catch (err) {
    throw new Error(`headless Chromium (${CHROMIUM_BIN}) did not start: install it with scripts/install-deps --tests ` +
      `(apt-get install chromium) or point CHROMIUM_BIN at one. ${err.message.split('\n')[0]}`);
  }
  const contexts = new Set();
  return {
    browser,
    async newPage() {
      const context = await browser.newContext();
      contexts.add(context);
      // Browsers ask every origin for one; a 404 for it is no problem of the page's.
      await context.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
      const page = await context.newPage();
      page.problems = [];
      page.on('console', (msg) => { if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`); });
      page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
      page.setDefaultTimeout(10000);
      return page;
    },
    async close() {
      await Promise.allSettled([...contexts].map((c) => c.close()));
      await withTimeout(browser.close(), 10000, 'closing Chromium').catch(() => {});
    },
  };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript' };

/**
 * Serves files on 127.0.0.1 (a free port): `routes` maps a URL path to {file} (read at each
 * request) or {body, type}. The deploy clients and pusher-js are served as the tests' pages
 * would load them from a site. Returns {url, port, route(path, spec), close()}.
 */
export async function servePages(routes = {}) {
  const table = new Map(Object.entries(routes));
  const server = http.createServer((req, res) => {
    const spec = table.get(new URL(req.url, 'http://127.0.0.1').pathname);
    if (!spec) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const body = spec.file ? readFileSync(spec.file) : spec.body;
      const type = spec.type ?? TYPES[path.extname(spec.file ?? '')] ?? 'text/html; charset=utf-8';
      res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(body);
    } catch (err) {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${err.message}\n`);
    }
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    route(urlPath, spec) { table.set(urlPath, spec); },
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

/** The files a page needs to run the deploy clients: pusher-js's web build and the clients. */
export const CLIENT_FILES = {
  '/pusher.min.js': { file: path.join(repoRoot, 'scripts', 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.min.js') },
  '/browser.js': { file: path.join(repoRoot, 'deploy', 'clients', 'browser.js') },
  '/invalidations.mjs': { file: path.join(repoRoot, 'deploy', 'clients', 'invalidations.mjs') },
};
