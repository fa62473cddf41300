/** Option parsers shared by the catalog commands (list, show, status, prune). */
import { parseDuration } from '../../core/catalog';
import { PgferryError } from '../../core/errors';

/**
 * A point in time: an ISO 8601 date or time (`2026-03-01`, `2026-03-01T12:00:00Z`; UTC unless
 * it says otherwise), or a duration back from now (`36h`, `7d`, `1w`).
 */
export function parseTime(text: string, now: Date = new Date()): Date {
  if (/^\d+[mhdw]$/.test(text.trim())) return new Date(now.getTime() - parseDuration(text) * 1000);
  const iso = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(text.trim());
  const time = iso ? Date.parse(iso[1] && !iso[4] ? `${text.trim()}Z` : text.trim()) : Number.NaN;
  if (!Number.isFinite(time)) {
    throw new PgferryError(
      'InvalidInput',
      `not a time: ${JSON.stringify(text)} (use an ISO 8601 time such as 2026-03-01T12:00:00Z, a date, or a duration ago such as 7d)`,
    );
  }
  return new Date(time);
}

/** A count of backups to keep: 0 or more. */
export function parseCount(text: string): number {
  if (!/^\d+$/.test(text.trim()))
    throw new PgferryError('InvalidInput', `not a count: ${JSON.stringify(text)}`);
  return Number(text);
}

/** `2026-03-15T02:00:00Z`: an ISO time without milliseconds. */
export function shortTime(iso: string): string {
  return iso.replace(/\.\d+Z$/, 'Z');
}

/** The help of `--name` on the commands that read the catalog. */
export const NAME_HELP =
  'the catalog name the backups are filed under (the configured id on AWS; by default the database name)';
/** The help of `--database`, kept for scripts written before `--name`. */
export const DATABASE_ALIAS_HELP = 'the same as --name (its earlier spelling)';

/** `--name`, or `--database` (its earlier spelling); both, differing, is refused. */
export function catalogNameOption(opts: { name?: string; database?: string }): string | undefined {
  if (opts.name !== undefined && opts.database !== undefined && opts.name !== opts.database) {
    throw new PgferryError(
      'InvalidInput',
      `--name ${JSON.stringify(opts.name)} and --database ${JSON.stringify(opts.database)} differ: --database is --name's earlier spelling; give one`,
    );
  }
  return opts.name ?? opts.database;
}
