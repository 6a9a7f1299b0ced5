// Latency statistics the benchmark drivers share.

/** The p-quantile (0..1) of a histogram Map(ms -> count), nearest rank; null when empty. */
export function percentile(hist, p) {
  let total = 0;
  for (const n of hist.values()) total += n;
  if (total === 0) return null;
  const rank = Math.ceil(p * total);
  let seen = 0;
  for (const ms of [...hist.keys()].sort((a, b) => a - b)) {
    seen += hist.get(ms);
    if (seen >= rank) return ms;
  }
  return null;
}
