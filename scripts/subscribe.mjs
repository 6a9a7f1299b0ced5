#!/usr/bin/env node
// Subscribes to a channel with pusher-js, as a browser or a Next.js app would, and prints
// every event it receives, one JSON line each (with the commit-to-receipt latency).
//
//   node scripts/subscribe.mjs [--env-file .env] [--channel invalidations] [--count N] [--timeout-ms T]
//
// Reads SOKETI_APP_KEY (or SOKETI_DEFAULT_APP_KEY), SOKETI_HOST, SOKETI_PORT, SOKETI_USE_TLS
// from the .env file; real environment variables win. Exits after --count events or --timeout-ms.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Pusher = require('pusher-js');

const args = { envFile: '.env', channel: null, count: Infinity, timeoutMs: Infinity };
for (let i = 2; i < process.argv.length; i++) {
  const [flag, value] = [process.argv[i], process.argv[i + 1]];
  if (flag === '--env-file') args.envFile = value;
  else if (flag === '--channel') args.channel = value;
  else if (flag === '--count') args.count = Number(value);
  else if (flag === '--timeout-ms') args.timeoutMs = Number(value);
  else { console.error(`subscribe.mjs: unknown argument ${flag}`); process.exit(2); }
  i++;
}

const env = {};
try {
  for (const line of readFileSync(args.envFile, 'utf8').split('\n')) {
    const m = line.match(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/);
    if (m) env[m[1]] = m[2].replace(/^(['"])(.*)\1$/, '$2');
  }
} catch { /* no file: environment only */ }
Object.assign(env, process.env);

const key = env.SOKETI_APP_KEY || env.SOKETI_DEFAULT_APP_KEY || 'app-key';
const tls = /^(1|true|yes|on)$/i.test(env.SOKETI_USE_TLS || '');
const channelName = args.channel || env.BRIDGE_CHANNEL || 'invalidations';
const pusher = new Pusher(key, {
  wsHost: env.SOKETI_HOST || '127.0.0.1',
  wsPort: Number(env.SOKETI_PORT || 6001),
  wssPort: Number(env.SOKETI_PORT || 6001),
  forceTLS: tls,
  enabledTransports: tls ? ['wss'] : ['ws'],
  cluster: 'mt1', // required by pusher-js, unused with wsHost
});

let received = 0;
const finish = (code) => { pusher.disconnect(); process.exit(code); };
const channel = pusher.subscribe(channelName);
channel.bind('pusher:subscription_succeeded', () => {
  console.log(JSON.stringify({ subscribed: channelName }));
});
channel.bind_global((event, data) => {
  if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) return;
  // From the bridge's stamp (taken when it received the change, just after the commit) to here.
  const sinceStampMs = Number.isFinite(data?.seq) ? Math.max(0, Date.now() - data.seq / 1000) : undefined;
  console.log(JSON.stringify({ event, channel: channelName, data, sinceStampMs: sinceStampMs?.toFixed(1) }));
  if (++received >= args.count) finish(0);
});
pusher.connection.bind('error', (err) => console.error('subscribe.mjs: connection error', JSON.stringify(err)));
if (Number.isFinite(args.timeoutMs)) setTimeout(() => finish(received > 0 ? 0 : 1), args.timeoutMs);
