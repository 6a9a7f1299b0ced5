// The Next.js cache tag for one of the bridge's cache keys. Tag what you cache with it, and
// the revalidate route (app/api/revalidate/route.js) expires the same tag:
//   fetch(url, { next: { tags: [cacheTagFor('posts:42')] } })   or   cacheTag(cacheTagFor('posts:42'))
// Next.js ignores a tag longer than 256 characters (it is never assigned, so revalidating it
// does nothing): a longer key becomes its first 223 characters, '#', and 32 hex digits of its
// SHA-256, so two long keys never share a tag.
import { createHash } from 'node:crypto';

export const kMaxTagLength = 256;
const kHashDigits = 32;

export function cacheTagFor(cacheKey) {
  if (cacheKey.length <= kMaxTagLength) return cacheKey;
  const hash = createHash('sha256').update(cacheKey).digest('hex').slice(0, kHashDigits);
  return `${cacheKey.slice(0, kMaxTagLength - kHashDigits - 1)}#${hash}`;
}
