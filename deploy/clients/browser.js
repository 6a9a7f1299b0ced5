// Browser side: drop locally cached entries when the bridge says their key changed.
// Load pusher-js first, then this file:
//   <script src="https://js.pusher.com/8.4.0/pusher.min.js"></script>
//   <script src="browser.js"></script>
// (In a bundled app: import Pusher from 'pusher-js' and use invalidations.mjs, which also
// fetches the bridge's /snapshot so the page starts from the current state.)
// Listen for window 'cache-invalidate' events to refetch what is on screen.
// Configure it by editing the defaults below, or without editing this file: set
// window.cacheBridgeConfig before loading it; its fields replace the defaults one by one:
//   <script>window.cacheBridgeConfig = { key: 'my-key', host: 'soketi.example.com', port: 443 };</script>
(function listenForInvalidations() {
  const config = {
    key: 'app-key', // SOKETI_APP_KEY: public
    host: location.hostname, // where Soketi (or its proxy) is reachable
    port: 6001,
    tls: location.protocol === 'https:',
    channels: ['invalidations'], // BRIDGE_CHANNEL (each expanded channel if it is a template)
    event: 'cache-invalidate', // BRIDGE_EVENT
    ...(window.cacheBridgeConfig ?? {}),
  };
  // Whatever the app caches by key: an in-memory Map, plus localStorage as an example.
  const cache = (window.appCache ??= new Map());
  const lastSeen = new Map(); // newest { seq, invalidatedAt } handled per key, this page's lifetime

  function onInvalidate(data) {
    const { cacheKey, invalidatedAt } = data ?? {};
    const seq = Number.isSafeInteger(data?.seq) ? data.seq : undefined;
    if (typeof cacheKey !== 'string' || (seq === undefined && !Number.isFinite(invalidatedAt))) return;
    // Replays (data.replay) follow the live rule: only what is newer than this page has seen.
    // seq orders a key's changes; invalidatedAt can tie, so it decides only for older bridges
    // that send no seq.
    const prev = lastSeen.get(cacheKey);
    const newer = prev === undefined ||
      (seq !== undefined && prev.seq !== undefined ? seq > prev.seq : invalidatedAt > prev.invalidatedAt);
    if (!newer) return;
    lastSeen.set(cacheKey, { seq, invalidatedAt });
    cache.delete(cacheKey);
    try {
      localStorage.removeItem(`cache:${cacheKey}`);
    } catch {
      // Storage may be disabled; the in-memory entry is gone either way.
    }
    window.dispatchEvent(new CustomEvent('cache-invalidate', { detail: data }));
  }

  const pusher = new Pusher(config.key, {
    cluster: 'mt1', // pusher-js requires one; wsHost overrides it
    wsHost: config.host,
    wsPort: config.port,
    wssPort: config.port,
    forceTLS: config.tls,
    enabledTransports: ['ws', 'wss'],
    disableStats: true,
  });
  for (const name of config.channels) pusher.subscribe(name).bind(config.event, onInvalidate);
})();
