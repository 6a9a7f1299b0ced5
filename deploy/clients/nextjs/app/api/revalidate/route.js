// POST /api/revalidate: expires the Next.js cache entries tagged with each changed cache key.
// Called by worker.mjs (or any trusted caller) with
//   Authorization: Bearer <REVALIDATE_SECRET>
//   {"invalidations": [{"cacheKey": "posts:42", "invalidatedAt": 1732380000000}, ...]}
// Tag cached data with the same keys the database triggers produce (<table>:<id>):
//   fetch(url, { next: { tags: ['posts:42'] } })   or   cacheTag('posts:42') under 'use cache'
import { createHash, timingSafeEqual } from 'node:crypto';
import { revalidateTag } from 'next/cache';

export const runtime = 'nodejs';

const kMaxPerRequest = 100; // worker.mjs sends at most this many per request
const kMaxTagLength = 256; // Next.js rejects longer tags

function authorized(request) {
  const secret = process.env.REVALIDATE_SECRET;
  if (!secret) return false;
  // Hash both sides to one length so the comparison takes the same time whatever is sent.
  const digest = (text) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(request.headers.get('authorization') ?? ''), digest(`Bearer ${secret}`));
}

export async function POST(request) {
  if (!authorized(request)) {
    return Response.json({ error: 'unauthorized' }, { status: 401 });
  }
  const body = await request.json().catch(() => null);
  const items = body?.invalidations;
  const valid = Array.isArray(items) && items.length <= kMaxPerRequest &&
    items.every((item) => typeof item?.cacheKey === 'string' && item.cacheKey.length > 0 &&
      item.cacheKey.length <= kMaxTagLength && Number.isFinite(item.invalidatedAt));
  if (!valid) {
    return Response.json(
      { error: `expected {"invalidations": [{cacheKey, invalidatedAt}], at most ${kMaxPerRequest}}` },
      { status: 400 });
  }
  for (const { cacheKey } of items) {
    // { expire: 0 }: the next request for this data fetches it afresh, the mode Next.js
    // documents for external callers. Use 'max' to serve stale while refetching instead.
    // (Next.js 14 and 15 take only the tag and ignore the second argument.)
    revalidateTag(cacheKey, { expire: 0 });
  }
  return Response.json({ revalidated: items.length, now: Date.now() });
}
