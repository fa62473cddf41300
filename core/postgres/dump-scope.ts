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
import { PgferryError } from '../errors';
import type { DumpJobTable } from '../strategy';
import { quoteIdent } from './quote';
import { argumentsMatchNames, isAscii } from './server-encodings';

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
  return unmatchedMessage(kind === 'schemas' ? '--schema' : '--table', pattern, database);
}

function unmatchedMessage(option: string, pattern: string, database: string): string {
  const kind = option === '--schema' ? 'schema' : 'table';
  return (
    `${option} ${JSON.stringify(pattern)} matches no ${kind} of the database ${JSON.stringify(database)}: ` +
    `check its spelling (each --schema and --table pattern must match); nothing was backed up`
  );
}

/**
 * pg_dump's regular expressions for `pattern` (its `patternToSQLRegex`, as pg_dump calls it: regex
 * characters outside quotes pass as they are): the name's, and the schema's when a table pattern
 * is qualified (`parts` 2) — each `^(…)$`; `dots` counts every separator, as pg_dump does (a table
 * pattern's third part, a database name, is not modelled: see {@link pgDumpScope}).
 */
export function patternRegexes(
  pattern: string,
  parts: 1 | 2,
): { name: string; schema?: string; dots: number } {
  const done: string[] = [];
  let current = '^(';
  let dots = 0;
  for (const { ch, quoted, next } of patternChars(pattern)) {
    if (ch === undefined) continue; // a quote opened or closed
    if (!quoted && ch >= 'A' && ch <= 'Z') current += ch.toLowerCase();
    else if (!quoted && ch === '*') current += '.*';
    else if (!quoted && ch === '?') current += '.';
    else if (!quoted && ch === '.') {
      dots++;
      if (done.length + 1 < parts) {
        done.push(`${current})$`);
        current = '^(';
      } else current += '.';
    } else if (ch === '$') current += '\\$';
    else if (quoted && '|*+?()[]{}.^$\\'.includes(ch)) current += `\\${ch}`;
    else if (ch === '[' && next === ']') current += `\\${ch}`;
    else current += ch;
  }
  const name = `${current})$`;
  return done.length > 0 ? { schema: done[0], name, dots } : { name, dots };
}

/**
 * `pattern` with each character other than ASCII made a `?` wildcard (inside quotes, the quote
 * is closed around it), for pg_dump of a database not in UTF8: pg_dump's arguments are UTF-8, which
 * it matches in the database's encoding, while `?` matches any one character in every encoding.
 */
export function asciiPattern(pattern: string): string {
  let out = '';
  for (const { ch, quoted } of patternChars(pattern)) {
    if (ch === undefined) out += '"';
    else if (ch === '"')
      out += '""'; // a double quote within quotes, doubled as it was given
    else if (!isAscii(ch)) out += quoted ? '"?"' : '?';
    else out += ch;
  }
  return out;
}

/**
 * A pg_dump pattern's characters as pg_dump reads them: each with whether it lies within double
 * quotes and the character after it; a quote that opens or closes is given without a character,
 * and `""` within quotes as one `"` character.
 */
function* patternChars(pattern: string): Generator<{ ch?: string; quoted: boolean; next?: string }> {
  const chars = Array.from(pattern);
  let quoted = false;
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch !== '"') yield { ch, quoted, next: chars[i + 1] };
    else if (quoted && chars[i + 1] === '"') yield { ch: chars[i++], quoted, next: chars[i + 1] };
    else {
      quoted = !quoted;
      yield { quoted };
    }
  }
}

/** True when some pattern of the scope holds a character other than ASCII (see {@link pgDumpScope}). */
export function hasNonAsciiPattern(scope: DumpScope | undefined): scope is DumpScope {
  return isScoped(scope) && DUMP_SCOPE_OPTIONS.some(([field]) => !scope[field].every(isAscii));
}

/** A scope pattern's matches in the catalog: oid and qualified name; undefined when it cannot be asked. */
type Matches = Map<string, string> | undefined;

/**
 * The scope as pg_dump must be given it, read in the dump's snapshot (the session's client
 * encoding UTF8): `scope` itself in a UTF8 or SQL_ASCII database or when every pattern is ASCII. Otherwise each
 * non-ASCII pattern becomes its {@link asciiPattern}, once the catalog shows it matches exactly the
 * schemas or tables the user's pattern matches (asked of the server, in Unicode, with pg_dump's own
 * regular expressions and rules). Throws one line, before anything is dumped, when it would match
 * something more or less (naming what), when it has a database part, and when an include pattern
 * matches nothing (`--strict-names` would name the wildcard pattern, not the user's).
 */
export async function pgDumpScope<S extends DumpScope>(
  client: Pick<Client, 'query'>,
  scope: S | undefined,
  database: string,
): Promise<S | undefined> {
  if (!hasNonAsciiPattern(scope)) return scope;
  const { rows } = await client.query<{ encoding: string }>(
    "SELECT current_setting('server_encoding') AS encoding",
  );
  const encoding = rows[0].encoding;
  if (argumentsMatchNames(encoding)) return scope;
  const translated: Partial<Record<keyof DumpScope, string[]>> = {};
  for (const [field, option] of DUMP_SCOPE_OPTIONS) {
    const table = field !== 'schemas' && field !== 'excludeSchemas';
    const patterns: string[] = [];
    for (const pattern of scope[field]) {
      if (isAscii(pattern)) {
        patterns.push(pattern);
        continue;
      }
      const ascii = asciiPattern(pattern);
      const refuse = (why: string) =>
        new PgferryError(
          'DumpFailed',
          `${option} ${JSON.stringify(pattern)} cannot be passed to pg_dump exactly: the database ` +
            `${JSON.stringify(database)} is in ${encoding}, in which pg_dump matches its patterns, and ${why}; ` +
            'give a pattern of ASCII characters and wildcards (* and ?) that matches only what you mean, ' +
            'or back up a wider scope (its schema, or the whole database); nothing was backed up',
        );
      const wanted = patternRegexes(pattern, table ? 2 : 1);
      if (wanted.dots > (table ? 1 : 0)) throw refuse('it holds a database name (give it without)');
      const meant = await catalogMatches(client, wanted, table);
      if (meant === undefined || meant.size === 0) {
        if (field === 'schemas' || field === 'tables')
          throw new PgferryError('DumpFailed', unmatchedMessage(option, pattern, database));
      }
      const got = await catalogMatches(client, patternRegexes(ascii, table ? 2 : 1), table);
      const more = differ(got, meant);
      const fewer = differ(meant, got);
      if (more.length > 0 || fewer.length > 0) {
        const as = `as ${JSON.stringify(ascii)} (the characters other than ASCII as wildcards) it would`;
        throw refuse(more.length > 0 ? `${as} also match ${listed(more)}` : `${as} miss ${listed(fewer)}`);
      }
      patterns.push(ascii);
    }
    translated[field] = patterns;
  }
  return { ...scope, ...translated };
}

/** The names `a` matches that `b` does not. */
function differ(a: Matches, b: Matches): string[] {
  return [...(a ?? [])].filter(([oid]) => !b?.has(oid)).map(([, name]) => name);
}

function listed(names: string[]): string {
  return `${names.slice(0, 3).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more` : ''}`;
}

/**
 * What a pattern's regular expressions match, as pg_dump asks (a table pattern: tables, views,
 * sequences, foreign and partitioned tables; unqualified, visible ones only). Undefined when the
 * server cannot take the expression (a character its encoding lacks): within a savepoint, so that
 * the snapshot's transaction goes on.
 */
async function catalogMatches(
  client: Pick<Client, 'query'>,
  regex: { name: string; schema?: string },
  table: boolean,
): Promise<Matches> {
  const sql = table
    ? `SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name
         FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = ANY (array['r', 'S', 'v', 'm', 'f', 'p'])
          AND c.relname ~ $1 COLLATE pg_catalog.default
          AND CASE WHEN $2::text IS NULL THEN pg_catalog.pg_table_is_visible(c.oid)
                   ELSE n.nspname ~ $2 COLLATE pg_catalog.default END`
    : `SELECT n.oid::text AS oid, NULL AS schema, n.nspname AS name
         FROM pg_catalog.pg_namespace n WHERE n.nspname ~ $1 COLLATE pg_catalog.default`;
  await client.query('SAVEPOINT pgferry_scope');
  try {
    const { rows } = await client.query<{ oid: string; schema: string | null; name: string }>(
      sql,
      table ? [regex.name, regex.schema ?? null] : [regex.name],
    );
    await client.query('RELEASE SAVEPOINT pgferry_scope');
    return new Map(rows.map((r) => [r.oid, r.schema === null ? r.name : `${r.schema}.${r.name}`]));
  } catch (err) {
    if ((err as { code?: string }).code !== '22P05') throw err;
    await client.query('ROLLBACK TO SAVEPOINT pgferry_scope');
    return undefined;
  }
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
 * and so does (`kept`) a table whose schema or name a side pg_dump's patterns (UTF-8, its
 * arguments) cannot name: not ASCII, in a database whose names UTF-8 arguments do not meet
 * (`argumentsMatchNames`); in SQL_ASCII (bytes as a client sent them, which the patterns meet), a
 * name whose bytes are not UTF-8 (read here as U+FFFD).
 */
export async function readDumpJobTables(client: Pick<Client, 'query'>): Promise<DumpJobTable[]> {
  const { rows } = await client.query<{ schema: string; name: string; bytes: string; encoding: string }>(
    `SELECT n.nspname AS schema, c.relname AS name,
            coalesce(pg_relation_size(c.oid), 0) + coalesce(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS bytes,
            current_setting('server_encoding') AS encoding
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relpersistence = 'p'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
  );
  const named = (r: { schema: string; name: string; encoding: string }) =>
    argumentsMatchNames(r.encoding)
      ? !`${r.schema}${r.name}`.includes('\uFFFD')
      : isAscii(r.schema) && isAscii(r.name);
  return rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    bytes: Number(r.bytes),
    ...(named(r) ? {} : { kept: true }),
  }));
}
