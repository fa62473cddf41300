/** Human-facing output: sizes, tables, the progress line. */

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

export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/**
 * A one-line progress display on a terminal (bytes dumped, stored, MB/s); nothing otherwise,
 * so logs and pipes stay clean.
 */
export class ProgressLine {
  private readonly started = Date.now();
  private shown = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled: boolean = Boolean(process.stderr.isTTY),
  ) {}

  update(label: string, doneBytes: number, extra = ''): void {
    if (!this.enabled) return;
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    const rate = formatBytes(doneBytes / seconds);
    this.stream.write(`\r\x1b[K${label} ${formatBytes(doneBytes)} (${rate}/s)${extra ? ` ${extra}` : ''}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
