/**
 * What a database needs of the server it is restored, verified or migrated into, beyond its
 * dump: an encoding and a locale to be created with, the collations its objects use, and lz4 for
 * the columns compressed with it. Read from the source (`read…`, recorded in the manifest),
 * checked against a target before anything is downloaded or created (`missing…`: one phrase per
 * thing the target lacks), and turned into the `CREATE DATABASE` that makes a database like the
 * source's (`createDatabaseSql`).
 */
import type { Client } from 'pg';
import type {
  BackupManifest,
  CollationRequirement,
  ColumnRef,
  DatabaseLocale,
  LocaleProvider,
} from '../contracts';
import { serverInfo } from './inspect';
import { quoteIdent } from './quote';

const PROVIDERS: Record<string, LocaleProvider> = { c: 'libc', i: 'icu', b: 'builtin' };

/** Locales that every server has and that suit every encoding. */
const C_LOCALES = new Set(['C', 'POSIX']);

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The encoding and locale of `database` (default: the connected one), as its server reports them. */
export async function readDatabaseLocale(
  client: Client,
  database?: string,
): Promise<{ encoding: string; locale: DatabaseLocale }> {
  const { major } = await serverInfo(client);
  // pg_database gained the provider and ICU locale in 15, ICU rules in 16; 17 renamed the locale.
  const provider = major >= 15 ? 'datlocprovider' : "'c'";
  const locale = major >= 17 ? 'datlocale' : major >= 15 ? 'daticulocale' : 'NULL';
  const rules = major >= 16 ? 'daticurules' : 'NULL';
  const { rows } = await client.query<{
    encoding: string;
    collate: string;
    ctype: string;
    provider: string;
    locale: string | null;
    rules: string | null;
  }>(
    `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype,
            ${provider}::text AS provider, ${locale} AS locale, ${rules} AS rules
     FROM pg_database WHERE datname = coalesce($1, current_database())`,
    [database ?? null],
  );
  const row = rows[0];
  const kind = PROVIDERS[row.provider] ?? 'libc';
  return {
    encoding: row.encoding,
    locale: {
      collate: row.collate,
      ctype: row.ctype,
      provider: kind,
      ...(kind === 'icu' && row.locale !== null ? { icuLocale: row.locale } : {}),
      ...(kind === 'icu' && row.rules !== null ? { icuRules: row.rules } : {}),
      ...(kind === 'builtin' && row.locale !== null ? { builtinLocale: row.locale } : {}),
    },
  };
}

/**
 * The collations the connected database's objects need: its own (outside the system schemas, not
 * an extension's), and the server's that its objects use (`pg_depend` records a column's, an
 * index's or an expression's collation), except the ones every server has.
 */
export async function readCollationRequirements(client: Client): Promise<CollationRequirement[]> {
  const { major } = await serverInfo(client);
  // Until 14 an ICU collation's locale is its collcollate; 15 and 16 call it colliculocale, 17 colllocale.
  const locale =
    major >= 17
      ? 'c.colllocale'
      : major >= 15
        ? 'c.colliculocale'
        : "CASE c.collprovider WHEN 'i' THEN c.collcollate END";
  const rules = major >= 16 ? 'c.collicurules' : 'NULL';
  const { rows } = await client.query<{
    schema: string;
    name: string;
    provider: string;
    collate: string | null;
    ctype: string | null;
    locale: string | null;
    rules: string | null;
    deterministic: boolean;
  }>(`
    SELECT n.nspname AS schema, c.collname AS name, c.collprovider::text AS provider,
           c.collcollate AS collate, c.collctype AS ctype, ${locale} AS locale, ${rules} AS rules,
           c.collisdeterministic AS deterministic
    FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
    WHERE (n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_temp\\_%'
           AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass
                           AND d.objid = c.oid AND d.deptype = 'e'))
       OR (n.nspname = 'pg_catalog' AND c.collname NOT IN ('default', 'C', 'POSIX')
           AND c.oid IN (SELECT refobjid FROM pg_depend
                         WHERE refclassid = 'pg_collation'::regclass AND deptype <> 'p'))
    ORDER BY 1, 2`);
  return rows.map((r) => {
    const provider = PROVIDERS[r.provider] ?? 'libc';
    return {
      schema: r.schema,
      name: r.name,
      provider,
      ...(provider === 'libc' && r.collate !== null ? { collate: r.collate } : {}),
      ...(provider === 'libc' && r.ctype !== null ? { ctype: r.ctype } : {}),
      ...(provider !== 'libc' && r.locale !== null ? { locale: r.locale } : {}),
      ...(r.rules !== null ? { rules: r.rules } : {}),
      deterministic: r.deterministic,
    };
  });
}

/** The connected database's columns compressed with lz4 (PostgreSQL 14 added column compression). */
export async function readLz4Columns(client: Client): Promise<ColumnRef[]> {
  if ((await serverInfo(client)).major < 14) return [];
  const { rows } = await client.query<ColumnRef>(`
    SELECT n.nspname AS schema, c.relname AS table, a.attname AS column
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE a.attcompression = 'l' AND a.attnum > 0 AND NOT a.attisdropped
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2, 3`);
  return rows;
}

/**
 * The connected database's settings (`ALTER DATABASE … SET`, and its roles' `ALTER ROLE … IN
 * DATABASE … SET`) that make lz4 the default TOAST compression, each as `ALTER DATABASE … SET name=value`.
 */
export async function readLz4Settings(client: Client): Promise<string[]> {
  const { rows } = await client.query<{ setting: string }>(`
      SELECT c AS setting FROM pg_db_role_setting s, unnest(s.setconfig) AS c
      WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND c ILIKE 'default_toast_compression=lz4'`);
  return rows.map((r) => `ALTER DATABASE … SET ${r.setting}`);
}

/** Whether the connected server can compress with lz4 (PostgreSQL 14 and later, built with it). */
export async function offersLz4(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ lz4: boolean }>(
    "SELECT 'lz4' = ANY(enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'",
  );
  return rows[0]?.lz4 === true;
}

/**
 * `CREATE DATABASE name TEMPLATE template0 …` with `encoding` and `locale` on a server of
 * `serverMajor`. Without a locale (a manifest older than recorded locales) the server's default
 * for template0 applies, as it always did.
 */
export function createDatabaseSql(
  name: string,
  serverMajor: number,
  encoding: string | undefined,
  locale: DatabaseLocale | undefined,
): string {
  const options = ['TEMPLATE template0'];
  if (encoding !== undefined) options.push(`ENCODING ${literal(encoding)}`);
  if (locale) {
    options.push(`LC_COLLATE ${literal(locale.collate)}`, `LC_CTYPE ${literal(locale.ctype)}`);
    // Named from 15 on even for libc: template0 may have another provider.
    if (serverMajor >= 15) options.push(`LOCALE_PROVIDER ${locale.provider}`);
    if (locale.icuLocale !== undefined) options.push(`ICU_LOCALE ${literal(locale.icuLocale)}`);
    if (locale.icuRules !== undefined) options.push(`ICU_RULES ${literal(locale.icuRules)}`);
    if (locale.builtinLocale !== undefined) options.push(`BUILTIN_LOCALE ${literal(locale.builtinLocale)}`);
  }
  return `CREATE DATABASE ${quoteIdent(name)} ${options.join(' ')}`;
}

/** Describes a locale in a few words: "LATIN1, C", "UTF8, ICU de-DE (C)". */
export function describeLocale(encoding: string, locale: DatabaseLocale): string {
  const libc = locale.collate === locale.ctype ? locale.collate : `${locale.collate}/${locale.ctype}`;
  if (locale.provider === 'icu') return `${encoding}, ICU ${locale.icuLocale ?? '?'} (${libc})`;
  if (locale.provider === 'builtin') return `${encoding}, builtin ${locale.builtinLocale ?? '?'} (${libc})`;
  return `${encoding}, ${libc}`;
}

/**
 * What keeps the connected server from creating a database with `encoding` and `locale` (absent:
 * its own default for template0): one phrase per thing it lacks, none when it can. Nothing is
 * created: locales are tried by `CREATE COLLATION` in a transaction that is rolled back.
 */
export async function missingToCreateDatabase(
  client: Client,
  encoding: string,
  locale: DatabaseLocale | undefined,
): Promise<string[]> {
  const { major } = await serverInfo(client);
  const missing: string[] = [];
  const { rows } = await client.query<{ id: number }>('SELECT pg_char_to_encoding($1) AS id', [encoding]);
  if (rows[0].id < 0) return [`the encoding ${encoding}`];
  const effective = locale ?? (await readDatabaseLocale(client, 'template0')).locale;
  for (const name of new Set([effective.collate, effective.ctype])) {
    if (C_LOCALES.has(name)) continue;
    if (await collationProblem(client, `provider = libc, locale = ${literal(name)}`)) {
      missing.push(`the operating system locale ${name}`);
      continue;
    }
    const charset = await localeEncoding(client, name);
    if (charset !== undefined && charset !== encoding && encoding !== 'SQL_ASCII') {
      missing.push(
        locale
          ? `a locale ${name} for encoding ${encoding} (the server's ${name} is for ${charset})`
          : `a default locale for encoding ${encoding} (its template0's ${name} is for ${charset})`,
      );
    }
  }
  if (!locale) return missing;
  if (locale.provider === 'icu') {
    if (major < 15) missing.push('ICU as a database locale provider (PostgreSQL 15 or newer)');
    else if (locale.icuRules !== undefined && major < 16) missing.push('ICU rules (PostgreSQL 16 or newer)');
    else {
      const problem = await tryIcu(client, major, locale.icuLocale ?? 'und', locale.icuRules);
      if (problem) missing.push(problem);
    }
  }
  if (locale.provider === 'builtin') {
    if (major < 17) missing.push('the builtin locale provider (PostgreSQL 17 or newer)');
    else if (
      await collationProblem(client, `provider = builtin, locale = ${literal(locale.builtinLocale ?? 'C')}`)
    ) {
      missing.push(`the builtin locale ${locale.builtinLocale}`);
    }
  }
  return missing;
}

/** What a backup's objects need of a server, besides the database itself. */
export interface ObjectNeeds {
  /** The database's encoding: a server's collations exist per encoding. */
  encoding: string;
  collations: readonly CollationRequirement[];
  lz4Columns: readonly ColumnRef[];
  /** Settings of the database (`ALTER DATABASE … SET name=value`) that name lz4. */
  lz4Settings: readonly string[];
}

/** What keeps the connected server from holding the objects of `needs`: one phrase per thing it lacks. */
export async function missingForObjects(client: Client, needs: ObjectNeeds): Promise<string[]> {
  const { major } = await serverInfo(client);
  const missing: string[] = [];
  for (const c of needs.collations) {
    const name = `${quoteIdent(c.schema)}.${quoteIdent(c.name)}`;
    if (c.schema === 'pg_catalog') {
      const { rows } = await client.query(
        `SELECT 1 FROM pg_collation WHERE collnamespace = 'pg_catalog'::regnamespace AND collname = $1
           AND collencoding IN (-1, pg_char_to_encoding($2))`,
        [c.name, needs.encoding],
      );
      if (rows.length === 0) missing.push(`the collation ${name} (${c.provider})`);
    } else if (c.provider === 'icu') {
      const problem = await tryIcu(client, major, c.locale ?? 'und', c.rules, c.deterministic);
      if (problem) missing.push(`${problem}, which the collation ${name} uses`);
    } else if (c.provider === 'builtin') {
      if (
        major < 17 ||
        (await collationProblem(client, `provider = builtin, locale = ${literal(c.locale ?? 'C')}`))
      ) {
        missing.push(
          `the builtin locale provider (PostgreSQL 17 or newer), which the collation ${name} uses`,
        );
      }
    } else {
      for (const locale of new Set([c.collate ?? 'C', c.ctype ?? 'C'])) {
        if (C_LOCALES.has(locale)) continue;
        if (await collationProblem(client, `provider = libc, locale = ${literal(locale)}`)) {
          missing.push(`the operating system locale ${locale}, which the collation ${name} uses`);
        }
      }
    }
  }
  if (needs.lz4Columns.length > 0 || needs.lz4Settings.length > 0) {
    if (!(await offersLz4(client))) {
      const users = [
        ...needs.lz4Columns.map(
          (c) => `${quoteIdent(c.schema)}.${quoteIdent(c.table)}.${quoteIdent(c.column)}`,
        ),
        ...needs.lz4Settings,
      ];
      const more = users.length > 3 ? ` and ${users.length - 3} more` : '';
      missing.push(
        `lz4 compression (the server is built without it), which ${users.slice(0, 3).join(', ')}${more} use${users.length === 1 ? 's' : ''}`,
      );
    }
  }
  return missing;
}

/** Everything a backup needs of a server, checked against the connected one: see the two above. */
export async function missingForBackup(
  client: Client,
  manifest: Pick<BackupManifest, 'requires' | 'databaseProperties'>,
  opts: { createsDatabase: boolean },
): Promise<string[]> {
  const requires = manifest.requires;
  if (!requires) return [];
  const lz4Settings = (manifest.databaseProperties?.settings ?? [])
    .filter((s) => /^default_toast_compression=lz4$/i.test(s.setting))
    .map((s) => `ALTER ${s.role === null ? '' : `ROLE ${s.role} IN `}DATABASE … SET ${s.setting}`);
  return [
    ...(opts.createsDatabase
      ? await missingToCreateDatabase(client, requires.encoding, requires.locale)
      : []),
    ...(await missingForObjects(client, {
      encoding: requires.encoding,
      collations: requires.collations ?? [],
      lz4Columns: requires.lz4Columns ?? [],
      lz4Settings,
    })),
  ];
}

/**
 * Creates a throwaway collation with `options` in a transaction that is rolled back: the server
 * loads its locale, as `CREATE DATABASE` would. The server's reason when it cannot; undefined when
 * it can, or when this session may not create temporary objects (nothing can be told then).
 */
async function collationProblem(
  client: Client,
  options: string,
  settings: string[] = [],
): Promise<string | undefined> {
  await client.query('BEGIN');
  try {
    for (const setting of settings) await client.query(setting);
    await client.query(`CREATE COLLATION pg_temp.pgferry_probe (${options})`);
    return undefined;
  } catch (err) {
    if ((err as { code?: string }).code === '42501') return undefined;
    return (err as Error).message;
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Whether the server offers ICU and knows `locale` (and takes `rules`): a phrase naming what it lacks. */
async function tryIcu(
  client: Client,
  major: number,
  locale: string,
  rules?: string,
  deterministic = true,
): Promise<string | undefined> {
  if (rules !== undefined && major < 16) return 'ICU rules (PostgreSQL 16 or newer)';
  const options = [
    'provider = icu',
    `locale = ${literal(locale)}`,
    ...(rules === undefined ? [] : [`rules = ${literal(rules)}`]),
    ...(deterministic ? [] : ['deterministic = false']),
  ].join(', ');
  // From 16 the server can tell a locale its ICU does not know (by default it only warns, and
  // sorts by the root locale instead: the order would silently change).
  const settings = major >= 16 ? ['SET LOCAL icu_validation_level = error'] : [];
  const problem = await collationProblem(client, options, settings);
  if (problem === undefined) return undefined;
  if (/not supported in this build/i.test(problem)) return 'ICU (the server is built without it)';
  return `the ICU locale ${locale}${rules === undefined ? '' : ' with its rules'} (${problem})`;
}

/**
 * The encoding a libc locale's character set is, as PostgreSQL names it: from the character set
 * in its name (`de_DE.ISO-8859-1`), else from the server's imported collation of that name;
 * undefined when neither tells.
 */
async function localeEncoding(client: Client, locale: string): Promise<string | undefined> {
  const charset = /\.([^@]+)/.exec(locale)?.[1];
  const { rows } = await client.query<{ encoding: string | null }>(
    `SELECT encoding FROM (
       SELECT 1 AS source, CASE WHEN $1::text IS NOT NULL AND pg_char_to_encoding($1) >= 0
                                THEN pg_encoding_to_char(pg_char_to_encoding($1)) END AS encoding
       UNION ALL
       SELECT 2, pg_encoding_to_char(collencoding) FROM pg_collation
       WHERE collprovider = 'c' AND collcollate = $2 AND collencoding >= 0
     ) e WHERE encoding IS NOT NULL ORDER BY source LIMIT 1`,
    [charset ?? null, locale],
  );
  return rows[0]?.encoding ?? undefined;
}

/** Who wrote a backup's archive (its pg_dump), and from what server. */
export interface ArchiveOrigin {
  server: { version: string; major: number };
  tool: { pgDumpVersion: string; pgDumpMajor: number };
}

/**
 * The oldest server major a backup restores into as it was made: its source's, or — when newer —
 * that of the pg_dump that wrote its archive (a migration's archive is written by the target's
 * pg_dump, and pg_restore replays what that pg_dump wrote).
 */
export function restoreMajor(manifest: ArchiveOrigin): number {
  return Math.max(manifest.server.major, manifest.tool.pgDumpMajor);
}

/** "pg_dump 17.12 (of a PostgreSQL 15.18 source)": who wrote a backup's archive, from what. */
export function describeArchive(manifest: ArchiveOrigin): string {
  return `pg_dump ${manifest.tool.pgDumpVersion} (of a PostgreSQL ${manifest.server.version} source)`;
}

/** What will likely fail when a backup is restored into a server of `targetMajor`, older than {@link restoreMajor}. */
export function downgradeRisks(manifest: ArchiveOrigin, targetMajor: number): string[] {
  const risks: string[] = [];
  const { pgDumpMajor } = manifest.tool;
  if (pgDumpMajor >= 17 && targetMajor < 17) {
    risks.push(
      `pg_restore ${pgDumpMajor} starts with SET transaction_timeout, which PostgreSQL ${targetMajor} does not know: the restore will fail at once`,
    );
  }
  if (pgDumpMajor > targetMajor) {
    risks.push(
      `SQL that pg_dump ${pgDumpMajor} writes for features PostgreSQL ${targetMajor} lacks will fail`,
    );
  }
  if (manifest.server.major > targetMajor) {
    risks.push(`objects using what PostgreSQL ${manifest.server.major} added after ${targetMajor} will fail`);
  }
  return risks;
}
