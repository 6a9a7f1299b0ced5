// POST /api/revalidate: expires the Next.js cache entries tagged with each changed cache key.
// Two callers, each with its own secret (set either or both):
// - the bridge itself, with BRIDGE_HTTP_SINK_URL pointing here (no worker needed, fits Vercel):
//     X-Cache-Bridge-Timestamp: <unix seconds>
//     X-Cache-Bridge-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>", BRIDGE_HTTP_SINK_SECRET>
// - worker.mjs (or any trusted caller):  Authorization: Bearer <REVALIDATE_SECRET>
// Body: {"invalidations": [{"cacheKey": "posts:42", "invalidatedAt": 1732380000000, ...}, ...]}
// Tag cached data with cacheTagFor(key) (lib/cache-tag.js), the same keys the database
// triggers produce (<table>:<id>; the table's name for a TRUNCATE):
//   fetch(url, { next: { tags: [cacheTagFor('posts:42')] } })   or   cacheTag(cacheTagFor('posts:42'))
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { revalidateTag } from 'next/cache';
import { cacheTagFor } from '../../../lib/cache-tag.js';

export const runtime = 'nodejs';

const kMaxPerRequest = 100; // BRIDGE_HTTP_SINK_MAX_BATCH (default 100) and worker.mjs stay within it
const kMaxClockSkewSeconds = 300; // older (or newer) signed requests are refused: no replays
const kMaxBodyBytes = 1 << 20; // 100 invalidations of long keys fit many times over

// The body as text, refused past kMaxBodyBytes before anyone is authenticated: an anonymous
// caller must not make the function buffer whatever it sends. null when too large.
async function readCapped(request) {
  if (Number(request.headers.get('content-length') ?? 0) > kMaxBodyBytes) return null;
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > kMaxBodyBytes) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// Hash both sides to one length so the comparison takes the same time whatever is sent.
function sameText(a, b) {
  const digest = (text) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

function signedByBridge(request, rawBody) {
  const secret = process.env.BRIDGE_HTTP_SINK_SECRET;
  const timestamp = request.headers.get('x-cache-bridge-timestamp') ?? '';
  const signature = request.headers.get('x-cache-bridge-signature') ?? '';
  if (!secret || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > kMaxClockSkewSeconds) return false;
  const expected = 'v1=' + createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex');
  return sameText(signature, expected);
}

function bearerAuthorized(request) {
  const secret = process.env.REVALIDATE_SECRET;
  return Boolean(secret) && sameText(request.headers.get('authorization') ?? '', `Bearer ${secret}`);
}

export async function POST(request) {
  const rawBody = await readCapped(request);
  if (rawBody === null) return Response.json({ error: 'body too large' }, { status: 413 });
  if (!signedByBridge(request, rawBody) && !bearerAuthorized(request)) {
    return Response.json({ error: 'unauthorized' }, { status: 401 });
  }
  let body = null;
  try {
    body = JSON.parse(rawBody);
  } catch {}
  const items = body?.invalidations;
  const valid = Array.isArray(items) && items.length <= kMaxPerRequest &&
    items.every((item) => typeof item?.cacheKey === 'string' && item.cacheKey.length > 0 &&
      Number.isFinite(item.invalidatedAt));
  if (!valid) {
    return Response.json(
      { error: `expected {"invalidations": [{cacheKey, invalidatedAt}], at most ${kMaxPerRequest}}` },
      { status: 400 });
  }
  for (const { cacheKey } of items) {
    // { expire: 0 }: the next request for this data fetches it afresh, the mode Next.js 16
    // documents for callers outside a Server Action (revalidateTag(tag) alone is deprecated;
    // 'max' would serve the stale page first while refetching).
    revalidateTag(cacheTagFor(cacheKey), { expire: 0 });
  }
  return Response.json({ revalidated: items.length, now: Date.now() });
}
