// A page whose data Next.js caches until the bridge says the row changed: the fetch is cached
// (force-cache) under the row's tag, and only revalidateTag (the revalidate route) expires it.
import { cacheTagFor } from '../../../lib/cache-tag.js';

export default async function Item({ params }) {
  const { id } = await params;
  const response = await fetch(`${process.env.DATA_URL}/items/${encodeURIComponent(id)}`, {
    cache: 'force-cache',
    next: { tags: [cacheTagFor(`items:${id}`)] },
  });
  const item = await response.json();
  return (
    <main>
      <h1 id="name">{item.name}</h1>
    </main>
  );
}
