/** Human-facing output: sizes, tables, names made safe to print (the progress line: ./progress.ts). */

/**
 * Characters that must never reach a terminal or a log line raw: C0 and C1 controls and DEL
 * (newline, carriage return, escape sequences), the Unicode line and paragraph separators, and
 * the bidirectional overrides that reorder what a reader sees.
 */
const UNPRINTABLE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` safe to print in a table, a log line or an error line: every control character is
 * written as an escape (`\n`, `\t`, `\x1b`, `\u2028`), so a name taken from a database or a store
 * (a database called `shop\nbilling  ok`) can never start a line of its own, move the cursor or
 * hide text. JSON output needs none of this: `JSON.stringify` escapes control characters itself.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (ch) => {
    const short = SHORT_ESCAPES[ch];
    if (short) return short;
    const code = ch.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Columns padded to their widest cell; every cell passes through `printable`. */
export function formatTable(header: string[], rawRows: string[][]): string {
  const rows = rawRows.map((row) => row.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
