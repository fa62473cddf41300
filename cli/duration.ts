const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };

/** A duration such as `500ms`, `2s`, `5min` or `1h`, in milliseconds (e.g. `--lock-wait-timeout`). */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|min|h)$/.exec(text.trim());
  const ms = match ? Math.round(Number(match[1]) * DURATION_UNITS_MS[match[2]]) : 0;
  if (!match || ms < 1) {
    throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 30s, 5min or 1h)`);
  }
  return ms;
}
