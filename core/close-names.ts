/**
 * Names close to one that matched nothing: what a refusal offers the user who mistyped it.
 */

/**
 * Of `candidates`, those close to `name`, closest first (then by name), at most `max`: equal but
 * for case, or within a few typing slips (one for names of 3 to 5 characters, two for longer ones: a
 * character added, left out, mistyped, or two swapped) of it with case ignored.
 */
export function closeNames(name: string, candidates: Iterable<string>, max = 5): string[] {
  const wanted = name.toLowerCase();
  const allowed = wanted.length >= 6 ? 2 : wanted.length >= 3 ? 1 : 0;
  const close: { candidate: string; distance: number }[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate === name) continue;
    const distance = editDistance(wanted, candidate.toLowerCase(), allowed);
    if (distance <= allowed) close.push({ candidate, distance });
  }
  return close
    .sort(
      (a, b) =>
        a.distance - b.distance || (a.candidate < b.candidate ? -1 : a.candidate > b.candidate ? 1 : 0),
    )
    .slice(0, max)
    .map((c) => c.candidate);
}

/**
 * The edits (insertions, deletions, substitutions and swaps of neighbours: optimal string
 * alignment) from `a` to `b`, by code point; `limit + 1` once more than `limit`.
 */
function editDistance(a: string, b: string, limit: number): number {
  const x = [...a];
  const y = [...b];
  if (Math.abs(x.length - y.length) > limit) return limit + 1;
  let before: number[] = [];
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) {
        current[j] = Math.min(current[j], before[j - 2] + 1);
      }
    }
    // Every later row is at least the smaller minimum of the last two.
    if (Math.min(...current) > limit && Math.min(...previous) > limit) return limit + 1;
    before = previous;
    previous = current;
  }
  return previous[y.length];
}
