// Client side of the bridge's contract: live cache-invalidate events plus the bridge's
// GET /snapshot, merged so that each change of a key is acted on once, newest wins.
// Works in browsers (through a bundler) and in Node >= 18; it needs nothing but the pusher-js
// instance the caller passes in.
//
//   const sub = subscribeInvalidations(pusher, {
//     channel: 'invalidations', snapshotUrl: 'https://bridge.example.com/snapshot',
//     onInvalidate: (data) => dropCachedEntry(data.cacheKey), onError: console.error });
//   await sub.ready; // first snapshot merged
//
// The rule: per cacheKey, remember the largest `seq` acted on and act only on a larger one.
// `seq` orders changes of one key; `invalidatedAt` can tie within a millisecond, so it is only
// the fallback for events from older bridges that send no `seq`.

const kRequestTimeoutMs = 10_000;
const kBaseBackoffMs = 500;
const kMaxBackoffMs = 30_000;

// Calls onInvalidate(data) once per change that is newer than anything seen for its key:
// live events (replays included) and the entries of every snapshot, which carry
// `snapshot: true`. A snapshot is fetched after each `pusher:subscription_succeeded`, so every
// subscriber, and every reconnect, gets the current state; the seq rule drops what is known.
//
// Live events are acted on at once, also while a snapshot is in flight: the seq rule already
// keeps an older snapshot entry from undoing them, and holding them back would only delay them.
//
// Options: channel (required), snapshotUrl (absent: live events only, for bridges without
// /snapshot), event, since (epoch ms, sent with every snapshot request), onInvalidate
// (required), onError(err) (a failed snapshot after maxAttempts, a subscription error, or an
// exception thrown by onInvalidate), maxAttempts (snapshot attempts per subscription),
// maxKeys (keys remembered; the least recently updated is forgotten first, so a forgotten key
// may be acted on again: one extra revalidation, never a missed one), fetch (for tests).
//
// Returns { ready, lastSeq(cacheKey), unsubscribe() }. `ready` resolves with
// { count, truncated } after the first snapshot was merged and rejects if it finally failed
// (the subscription keeps delivering live events and tries again on the next reconnect).
// unsubscribe() unbinds, cancels a pending snapshot and unsubscribes the channel in pusher-js.
export function subscribeInvalidations(pusher, {
  channel: channelName,
  snapshotUrl,
  event = 'cache-invalidate',
  since,
  onInvalidate,
  onError = () => {},
  maxAttempts = 8,
  maxKeys = 100_000,
  fetch = globalThis.fetch,
} = {}) {
  if (typeof channelName !== 'string' || !channelName) throw new TypeError('channel is required');
  if (typeof onInvalidate !== 'function') throw new TypeError('onInvalidate is required');

  const last = new Map(); // cacheKey -> { seq, at }, in order of last update
  let generation = 0; // bumped per subscription: an older snapshot request gives up
  let abortCurrent = null;
  let stopped = false;

  let settleReady;
  const ready = new Promise((resolve, reject) => { settleReady = { resolve, reject }; });
  ready.catch(() => {}); // onError reports the failure too; do not crash Node if unobserved
  const resolveReady = (value) => { settleReady?.resolve(value); settleReady = null; };
  const rejectReady = (err) => { settleReady?.reject(err); settleReady = null; };

  function report(err) {
    try {
      onError(err);
    } catch {
      // A throwing error handler must not break the merge.
    }
  }

  // Acts on `data` if it is the newest change seen for its key. Returns whether it did.
  function consider(data) {
    const key = data?.cacheKey;
    const seq = Number.isSafeInteger(data?.seq) ? data.seq : undefined;
    const at = data?.invalidatedAt;
    if (typeof key !== 'string' || (seq === undefined && !Number.isFinite(at))) return false;
    const prev = last.get(key);
    if (prev !== undefined) {
      const newer = seq !== undefined && prev.seq !== undefined ? seq > prev.seq : at > prev.at;
      if (!newer) return false;
      last.delete(key); // re-insert: the Map's order is the eviction order
    }
    last.set(key, { seq, at });
    if (last.size > maxKeys) last.delete(last.keys().next().value);
    try {
      onInvalidate(data);
    } catch (err) {
      report(err);
    }
    return true;
  }

  const onLive = (data) => { if (!stopped) consider(data); };
  const onSubscribed = () => { if (!stopped) sync(); };
  const onSubscriptionError = (status) => {
    const reason = status?.error ?? status?.type ?? 'unknown';
    const err = new Error(`subscription to ${channelName} failed: ${reason}`);
    report(err);
    rejectReady(err);
  };

  // Bound in the same tick as subscribe(): no event can arrive before the next one.
  const channel = pusher.subscribe(channelName);
  channel.bind(event, onLive);
  channel.bind('pusher:subscription_succeeded', onSubscribed);
  channel.bind('pusher:subscription_error', onSubscriptionError);
  if (channel.subscribed) sync(); // someone else subscribed first: no new succeeded event

  async function sync() {
    const mine = ++generation;
    abortCurrent?.();
    if (!snapshotUrl) {
      resolveReady({ count: 0, truncated: false });
      return;
    }
    let lastError;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let retryAfterMs;
      try {
        const body = await fetchSnapshot(mine);
        if (mine !== generation) return;
        const entries = body.invalidations
          .filter((e) => typeof e?.cacheKey === 'string' && Number.isSafeInteger(e.seq))
          .sort((a, b) => a.seq - b.seq);
        let count = 0;
        for (const entry of entries) if (consider({ ...entry, snapshot: true })) count++;
        resolveReady({ count, truncated: body.truncated === true });
        return;
      } catch (err) {
        if (mine !== generation) return; // superseded or unsubscribed
        lastError = err;
        if (!err.retry) break;
        retryAfterMs = err.retryAfterMs;
      }
      if (attempt === maxAttempts) break;
      // Jittered: subscribers that lost the bridge together do not come back together.
      const cap = Math.min(kBaseBackoffMs * 2 ** (attempt - 1), kMaxBackoffMs);
      const backoff = cap * (0.5 + Math.random() / 2);
      await sleep(retryAfterMs ?? backoff);
      if (mine !== generation) return;
    }
    const err = new Error(`snapshot of ${channelName} failed: ${lastError?.message ?? 'no attempt made'}`);
    err.cause = lastError;
    report(err);
    rejectReady(err);
  }

  function sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (abortCurrent === done) abortCurrent = null;
        resolve();
      }
      abortCurrent = done; // a new subscription or unsubscribe() ends the wait early
    });
  }

  async function fetchSnapshot(mine) {
    const url = new URL(snapshotUrl, globalThis.location?.href);
    url.searchParams.set('channel', channelName);
    if (since !== undefined) url.searchParams.set('since', String(since));
    if (/^(private|presence)-/.test(channelName)) {
      const auth = await authorize();
      if (mine !== generation) throw new Error('superseded');
      url.searchParams.set('socket_id', pusher.connection.socket_id);
      url.searchParams.set('auth', auth.auth);
      if (auth.channel_data != null) url.searchParams.set('channel_data', auth.channel_data);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), kRequestTimeoutMs);
    const abort = () => controller.abort();
    abortCurrent = abort;
    let response;
    let body;
    try {
      // A simple GET without custom headers: no CORS preflight.
      response = await fetch(url.href, { signal: controller.signal });
      if (response.ok) body = await response.json();
    } catch (err) {
      throw retryable(`request failed: ${err.message}`);
    } finally {
      clearTimeout(timer);
      if (abortCurrent === abort) abortCurrent = null; // a newer request may own it by now
    }
    if (response.status === 429) {
      throw retryable('HTTP 429', parseRetryAfter(response.headers.get('retry-after')));
    }
    if (response.status >= 500) throw retryable(`HTTP ${response.status}`);
    if (!response.ok) {
      // 400, 401, 403: retrying the same request cannot help. 404: a bridge without /snapshot.
      throw new Error(`HTTP ${response.status}`);
    }
    if (!Array.isArray(body?.invalidations)) throw new Error('malformed snapshot body');
    return body;
  }

  // The same string the subscription was authorized with, for this socket and channel.
  // Asked anew per attempt: after a reconnect the socket id is a different one.
  function authorize() {
    return new Promise((resolve, reject) => {
      channel.authorize(pusher.connection.socket_id, (err, authData) => {
        if (err || typeof authData?.auth !== 'string') {
          reject(retryable(`channel authorization failed: ${err?.message ?? err ?? 'no auth'}`));
        } else {
          resolve(authData);
        }
      });
    });
  }

  return {
    ready,
    lastSeq: (cacheKey) => last.get(cacheKey)?.seq,
    unsubscribe() {
      if (stopped) return;
      stopped = true;
      generation++;
      abortCurrent?.();
      channel.unbind(event, onLive);
      channel.unbind('pusher:subscription_succeeded', onSubscribed);
      channel.unbind('pusher:subscription_error', onSubscriptionError);
      pusher.unsubscribe(channelName);
      rejectReady(new Error('unsubscribed'));
    },
  };
}

function retryable(message, retryAfterMs) {
  const err = new Error(message);
  err.retry = true;
  err.retryAfterMs = retryAfterMs;
  return err;
}

// Retry-After in seconds (the bridge's form) or as an HTTP date (a proxy's).
function parseRetryAfter(value) {
  if (value == null || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
