/**
 * A backup's scope: which schemas and tables pg_dump dumps, and which tables it dumps without
 * their rows — pg_dump's own `--schema`, `--exclude-schema`, `--table`, `--exclude-table` and
 * `--exclude-table-data`, with pg_dump's pattern syntax (`*`, `?`, `"Quoted"`, `schema.table`),
 * passed to pg_dump as arguments of its own (never through a shell).
 *
 * Include patterns (`--schema`, `--table`) are passed with `--strict-names`: each one must match
 * something, so a typo'd name fails the backup instead of leaving a backup without the table.
 * pg_dump checks no exclude pattern (it has no way to); a typo there leaves more in the backup,
 * never less.
 */
import type { Client } from 'pg';
import type { DumpJobTable } from '../strategy';
import { quoteIdent } from './quote';

/** The longest pattern accepted: a quoted, schema-qualified name of two 63-byte identifiers with room to spare. */
export const MAX_DUMP_PATTERN_CHARS = 512;

/** How many patterns one list (`tables`, `excludeTables`, …) may hold. */
export const MAX_DUMP_PATTERNS = 200;

/** The scope of a dump: pg_dump's patterns, each list empty when not used. */
export interface DumpScope {
  /** `--schema`: only these schemas (and what is in them). */
  readonly schemas: readonly string[];
  /** `--exclude-schema`: not these schemas. */
  readonly excludeSchemas: readonly string[];
  /** `--table`: only these tables (views, sequences, foreign tables; not their schemas). */
  readonly tables: readonly string[];
  /** `--exclude-table`: not these tables. */
  readonly excludeTables: readonly string[];
  /** `--exclude-table-data`: these tables' definitions, without their rows. */
  readonly excludeTableData: readonly string[];
}

/** Each scope list, with pg_dump's option for it, in the order they are passed and described. */
export const DUMP_SCOPE_OPTIONS = [
  ['schemas', '--schema'],
  ['excludeSchemas', '--exclude-schema'],
  ['tables', '--table'],
  ['excludeTables', '--exclude-table'],
  ['excludeTableData', '--exclude-table-data'],
] as const satisfies readonly (readonly [keyof DumpScope, string])[];

/**
 * Throws, in one line naming `option`, when `pattern` cannot be a pg_dump pattern pgferry passes
 * on: empty (pg_dump would take it as matching nothing, or refuse), holding a NUL or another
 * control character (a process argument cannot hold a NUL; a name with a line break in a pattern
 * is more likely a pasting mistake), or longer than {@link MAX_DUMP_PATTERN_CHARS}.
 */
export function assertDumpPattern(pattern: string, option = 'a pattern'): void {
  if (pattern.trim() === '')
    throw new Error(`${option} needs a schema or table name (or pattern), not an empty one`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  const control = /[\u0000-\u001f\u007f]/.exec(pattern);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).padStart(4, '0');
    throw new Error(`${option} may not hold a control character (\\u${code}): give the name as it is`);
  }
  if (pattern.length > MAX_DUMP_PATTERN_CHARS) {
    throw new Error(
      `${option} is ${pattern.length} characters long; a pattern may have at most ${MAX_DUMP_PATTERN_CHARS}`,
    );
  }
}

/** True when the scope limits the dump at all (some list is not empty). */
export function isScoped(scope: DumpScope | undefined): scope is DumpScope {
  return scope !== undefined && DUMP_SCOPE_OPTIONS.some(([field]) => scope[field].length > 0);
}

/**
 * pg_dump's arguments for `scope`: one `--option=pattern` argument per pattern (a pattern that
 * begins with a dash stays the option's value), and `--strict-names` when there is an include
 * pattern. None for an unscoped dump.
 */
export function dumpScopeArgs(scope: DumpScope | undefined): string[] {
  if (!isScoped(scope)) return [];
  const args = DUMP_SCOPE_OPTIONS.flatMap(([field, option]) =>
    scope[field].map((pattern) => {
      assertDumpPattern(pattern, option);
      return `${option}=${pattern}`;
    }),
  );
  if (scope.schemas.length > 0 || scope.tables.length > 0) args.push('--strict-names');
  return args;
}

/**
 * The scope in one line, as the options that make it: `--schema=app --exclude-table-data=app.log`
 * (patterns with spaces or quotes are shown JSON-quoted); `whole database` when unscoped.
 */
export function describeDumpScope(scope: DumpScope | undefined): string {
  if (!isScoped(scope)) return 'whole database';
  return DUMP_SCOPE_OPTIONS.flatMap(([field, option]) =>
    scope[field].map(
      (pattern) => `${option}=${/^[\w.*?$-]+$/.test(pattern) ? pattern : JSON.stringify(pattern)}`,
    ),
  ).join(' ');
}

/**
 * pg_dump's refusal of an include pattern that matched nothing (`--strict-names`), reworded to
 * say which option to fix; undefined when `stderr` holds no such refusal.
 */
export function unmatchedPattern(stderr: string, database: string): string | undefined {
  const found = /no matching (schemas|tables) were found for pattern "(.*?)"/.exec(stderr);
  if (!found) return undefined;
  const [, kind, pattern] = found;
  const option = kind === 'schemas' ? '--schema' : '--table';
  return (
    `${option} ${JSON.stringify(pattern)} matches no ${kind.slice(0, -1)} of the database ${JSON.stringify(database)}: ` +
    `check its spelling (each --schema and --table pattern must match); nothing was backed up`
  );
}

/**
 * A pg_dump pattern matching exactly the table `schema`.`name`: both quoted, so that no character
 * of either (`*`, `?`, `.`, upper case) is read as pattern syntax; a double quote is doubled.
 */
export function exactTablePattern(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * The tables whose data a parallel backup may dump apart from the main archive, with their size
 * on disk (heap and TOAST), read in the dump's snapshot: ordinary tables (and leaf partitions),
 * permanent, outside the system schemas, not members of an extension (pg_dump decides those
 * tables' data by the extension's own configuration). Everything else stays in the main archive,
 * and so does (`kept`), in a database not in UTF8, a table whose schema or name is not ASCII: a
 * side pg_dump's patterns are UTF-8 (its arguments), which pg_dump matches in the database's
 * encoding.
 */
export async function readDumpJobTables(client: Pick<Client, 'query'>): Promise<DumpJobTable[]> {
  const { rows } = await client.query<{ schema: string; name: string; bytes: string; kept: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS name,
            coalesce(pg_relation_size(c.oid), 0) + coalesce(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS bytes,
            current_setting('server_encoding') <> 'UTF8' AND n.nspname || c.relname !~ '^[\x01-\x7f]*$' AS kept
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relpersistence = 'p'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
  );
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    bytes: Number(r.bytes),
    ...(r.kept ? { kept: true } : {}),
  }));
}
