/**
 * Encodings and locales round-trip. A database comes back with its source's encoding, collation,
 * ctype and locale provider — restored into servers whose default locale is C.UTF-8 (as a Debian
 * or RDS server's is), verified on a throwaway server, migrated — and sorts as it did. A target
 * that cannot create the database as it was, or lacks a collation or the lz4 its objects use, is
 * refused by preflight, before anything is downloaded or created.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, VerifyReport } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { extraPgBinDirs, REPO, runCli, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const pg15 = env.server(15);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-locales-'));
const store = `file://${dir}`;
/** The runners' temporary folder: empty after every run, whatever happened. */
const workDir = mkdtempSync(path.join(tmpdir(), 'pgferry-locales-work-'));
/** Server binaries of every test major, for verify's throwaway servers. */
const binDirs = [
  ...extraPgBinDirs(),
  '/usr/lib/postgresql/15/bin',
  ...[14, 17].map((m) => path.join(REPO, 'node_modules', `pg${m}`, 'native', 'bin')),
].join(':');

/** Restore targets whose default locale is C.UTF-8: a LATIN1 database cannot take it. */
const targets: Record<number, () => TestPostgres> = {
  15: usePrivateServer(15, { locale: 'C.UTF-8' }),
  17: usePrivateServer(17, { locale: 'C.UTF-8' }),
};

/**
 * de_DE.UTF-8, compiled into a folder of its own: only the server started with it in `LOCPATH`
 * has it, as a source on another host might (no other server here, and no throwaway one, has).
 */
const localeDir = mkdtempSync(path.join(tmpdir(), 'pgferry-locpath-'));
beforeAll(() => {
  chmodSync(localeDir, 0o755);
  execFileSync('localedef', ['-i', 'de_DE', '-f', 'UTF-8', path.join(localeDir, 'de_DE.UTF-8')]);
}, 60_000);
const germanSource = usePrivateServer(17, { env: { LOCPATH: localeDir } });

afterAll(() => {
  for (const folder of [dir, workDir, localeDir]) rmSync(folder, { recursive: true, force: true });
});

function backup(pg: TestPostgres, database: string): Promise<BackupManifest> {
  return runCli(['backup', '--source', sourceUrl(pg, database), '--store', store, '--json']).then((r) => {
    if (r.code !== 0) throw new Error(`backup of ${database} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as BackupManifest;
  });
}

function restore(manifest: BackupManifest, target: TestPostgres, name: string, ...args: string[]) {
  return runCli(
    ['restore', '--store', store, '--backup', manifest.id, '--target', sourceUrl(target, name), ...args],
    { env: { PGFERRY_WORK_DIR: workDir } },
  );
}

function verify(manifest: BackupManifest) {
  return runCli(['verify', '--store', store, '--backup', manifest.id, '--json'], {
    env: { PGFERRY_PG_BIN_DIRS: binDirs },
  });
}

/** The database's encoding and locale as its server's catalog says (15 and later). */
async function localeOf(pg: TestPostgres, name: string) {
  const locale = pg.major >= 17 ? 'datlocale' : 'daticulocale';
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query(
      `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype,
              datlocprovider::text AS provider, ${locale} AS locale
       FROM pg_database WHERE datname = $1`,
      [name],
    );
    return rows[0] as Record<string, string | null> | undefined;
  });
}

/** How the database sorts: by its default collation, by a column's, and by upper() (LC_CTYPE). */
async function sortOrders(pg: TestPostgres, name: string) {
  return withClient(pg, name, async (c) => {
    const { rows } = await c.query(
      `SELECT array_agg(w ORDER BY w, id) AS by_default, array_agg(w ORDER BY upper(w), id) AS by_upper,
              array_agg(w ORDER BY g, id) AS by_column
       FROM words`,
    );
    return rows[0];
  });
}

/**
 * Words whose order differs between C, C.UTF-8 and ICU's de-DE: ICU sorts case and accents apart
 * from code points, and outside LC_CTYPE C upper('ı') is I (ı is not in LATIN1).
 */
const WORDS = ['ı', 'J', 'H', 'a', 'B', 'c', 'ä', 'é'];

/** A database on `pg` created with `options`, holding WORDS (`g`: a column of collation `collation`). */
async function wordsDatabase(pg: TestPostgres, name: string, options: string, collation = '"C"') {
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ${options}`),
  );
  await withClient(pg, name, async (c) => {
    await c.query(`CREATE TABLE words (id serial, w text, g text COLLATE ${collation})`);
    const words = options.includes('LATIN1') ? WORDS.filter((w) => w !== 'ı') : WORDS;
    for (const w of words) await c.query('INSERT INTO words (w, g) VALUES ($1, $1)', [w]);
  });
}

/** What a refused restore leaves: no database, nothing in the work folder, no restore report. */
async function expectNothingDone(target: TestPostgres, name: string, manifest: BackupManifest) {
  const { rows } = await withClient(target, 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]),
  );
  expect(rows).toEqual([]);
  expect(readdirSync(workDir)).toEqual([]);
  // The runner stores a report whatever the outcome: none means it never ran.
  const folder = path.join(dir, databaseSegment(manifest.database), manifest.id);
  expect(readdirSync(folder).filter((f) => f.startsWith('restore-report-'))).toEqual([]);
}

describe.each([
  ['LATIN1 with the C locale', "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'", 'C'],
  ['UTF8 with the C locale', "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'", 'C'],
  [
    'UTF8 with ICU de-DE',
    "ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LC_COLLATE 'C' LC_CTYPE 'C'",
    'C',
  ],
  ['UTF8 and C, with an ICU collation of its own', "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'", 'german'],
])('a database in %s', (_title, options, collation) => {
  const source = uniqueName('locale');
  let manifest: BackupManifest;

  beforeAll(async () => {
    if (collation === 'german') {
      await wordsDatabase(pg15, source, options, '"en-x-icu"');
      await withClient(pg15, source, (c) =>
        c.query(`CREATE COLLATION german (provider = icu, locale = 'de-DE');
                 ALTER TABLE words ALTER COLUMN g TYPE text COLLATE german;
                 CREATE TABLE tags (t text COLLATE "en-x-icu")`),
      );
    } else {
      await wordsDatabase(pg15, source, options);
    }
    manifest = await backup(pg15, source);
  });
  afterAll(() => dropDatabase(pg15, source));

  test('its manifest records its encoding, locale and the collations its objects use', async () => {
    const catalog = await localeOf(pg15, source);
    expect(manifest.requires?.encoding).toBe(catalog?.encoding);
    expect(manifest.requires?.locale).toMatchObject({
      collate: catalog?.collate,
      ctype: catalog?.ctype,
      provider: catalog?.provider === 'i' ? 'icu' : 'libc',
      ...(catalog?.provider === 'i' ? { icuLocale: 'de-DE' } : {}),
    });
    if (collation === 'german') {
      expect(manifest.requires?.collations).toEqual([
        expect.objectContaining({ schema: 'pg_catalog', name: 'en-x-icu', provider: 'icu' }),
        expect.objectContaining({ schema: 'public', name: 'german', provider: 'icu', locale: 'de-DE' }),
      ]);
    }
  });

  test.each([15, 17])('restores into PostgreSQL %i as it was, and sorts as it did', async (major) => {
    const target = targets[major]();
    const name = uniqueName('restored');
    try {
      const result = await restore(manifest, target, name);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const restored = await localeOf(target, name);
      const original = await localeOf(pg15, source);
      expect(restored).toEqual(original);
      expect(await sortOrders(target, name)).toEqual(await sortOrders(pg15, source));
      expect(readdirSync(workDir)).toEqual([]);
    } finally {
      await dropDatabase(target, name);
    }
  });

  test('verifies on a throwaway server that creates it the same way', async () => {
    const result = await verify(manifest);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as VerifyReport;
    expect(report.status).toBe('passed');
    expect(report.checks.createdWith).toEqual({
      encoding: manifest.requires?.encoding,
      locale: manifest.requires?.locale,
    });
  });
});

describe('a target that lacks what a backup needs is refused before anything is downloaded', () => {
  const lz4Source = uniqueName('lz4');
  const icuSource = uniqueName('icudb');
  const germanDb = uniqueName('german');
  const germanCollation = uniqueName('germancoll');
  const builtinDb = uniqueName('builtin');
  const latin1 = uniqueName('latin1old');
  const backups: Record<string, BackupManifest> = {};

  beforeAll(async () => {
    await createSeededDatabase(
      pg15,
      lz4Source,
      `CREATE TABLE docs (id int, body text COMPRESSION lz4);
               INSERT INTO docs SELECT g, repeat('lz4 ', 1000) FROM generate_series(1, 10) g`,
    );
    await withClient(pg15, 'postgres', (c) =>
      c.query(
        `CREATE DATABASE ${quoteIdent(icuSource)} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C'`,
      ),
    );
    const german = germanSource();
    await withClient(german, 'postgres', async (c) => {
      await c.query(`CREATE DATABASE ${quoteIdent(germanDb)} TEMPLATE template0 LOCALE 'de_DE.UTF-8'`);
      await c.query(`CREATE DATABASE ${quoteIdent(germanCollation)}`);
      await c.query(
        `CREATE DATABASE ${quoteIdent(builtinDb)} TEMPLATE template0 LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8' LOCALE 'C'`,
      );
    });
    await withClient(german, germanDb, (c) => c.query('CREATE TABLE t (a text); INSERT INTO t VALUES (1)'));
    await withClient(german, germanCollation, (c) =>
      c.query(
        `CREATE COLLATION de (provider = libc, locale = 'de_DE.UTF-8'); CREATE TABLE t (a text COLLATE de)`,
      ),
    );
    backups.lz4 = await backup(pg15, lz4Source);
    backups.icu = await backup(pg15, icuSource);
    backups.german = await backup(german, germanDb);
    backups.germanCollation = await backup(german, germanCollation);
    backups.builtin = await backup(german, builtinDb);
    await wordsDatabase(pg15, latin1, "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
    backups.latin1 = await backup(pg15, latin1);
  });
  afterAll(async () => {
    for (const name of [lz4Source, icuSource, latin1]) await dropDatabase(pg15, name);
  });

  test('a LATIN1 backup whose manifest predates recorded locales, on a server whose default is C.UTF-8', async () => {
    // As manifests were written before: the encoding, no locale.
    const file = path.join(dir, databaseSegment(latin1), backups.latin1.id, 'manifest.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as BackupManifest;
    const { encoding, extensions, roles } = manifest.requires ?? { encoding: '', extensions: [], roles: [] };
    writeFileSync(file, JSON.stringify({ ...manifest, requires: { encoding, extensions, roles } }));
    const target = targets[17]();
    const name = uniqueName('oldlatin1');
    const result = await restore(backups.latin1, target, name);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /it lacks a default locale for encoding LATIN1 \(its template0's C\.UTF-8 is for UTF8\); nothing was downloaded or created/,
    );
    await expectNothingDone(target, name, backups.latin1);
  });

  test('lz4 columns, on a server built without lz4 (the embedded PostgreSQL 17 here)', async () => {
    const target = targets[17]();
    const lz4 = await withClient(target, 'postgres', (c) =>
      c.query(
        "SELECT 'lz4' = ANY(enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'",
      ),
    );
    expect(lz4.rows[0].lz4).toBe(false); // the premise: this server really lacks lz4
    expect(backups.lz4.requires?.lz4Columns).toEqual([{ schema: 'public', table: 'docs', column: 'body' }]);
    const name = uniqueName('nolz4');
    const result = await restore(backups.lz4, target, name);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /PostgreSQL 17\.\d+\) cannot restore backup .* lacks lz4 compression \(the server is built without it\), which "public"\."docs"\."body" uses; nothing was downloaded or created\n$/,
    );
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    await expectNothingDone(target, name, backups.lz4);
  });

  test('an ICU database, on a server whose databases cannot use ICU (PostgreSQL 14)', async () => {
    const target = env.server(14);
    const name = uniqueName('noicu');
    const result = await restore(backups.icu, target, name, '--allow-downgrade');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /UTF8, ICU de-DE \(C\)\): it lacks ICU as a database locale provider \(PostgreSQL 15 or newer\)/,
    );
    await expectNothingDone(target, name, backups.icu);
  });

  test('a database in an operating-system locale the target host lacks', async () => {
    expect(backups.german.requires?.locale).toMatchObject({ collate: 'de_DE.UTF-8', provider: 'libc' });
    const target = targets[17]();
    const name = uniqueName('nogerman');
    const result = await restore(backups.german, target, name);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /it lacks the operating system locale de_DE\.UTF-8; nothing was downloaded or created/,
    );
    await expectNothingDone(target, name, backups.german);
  });

  test('a collation of its own in a locale the target host lacks', async () => {
    const target = targets[17]();
    const name = uniqueName('nogermancoll');
    const result = await restore(backups.germanCollation, target, name);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /the operating system locale de_DE\.UTF-8, which the collation "public"\."de" uses/,
    );
    await expectNothingDone(target, name, backups.germanCollation);
  });

  test('a database of the builtin provider, on a server before 17', async () => {
    const target = targets[15]();
    const name = uniqueName('nobuiltin');
    const result = await restore(backups.builtin, target, name, '--allow-downgrade');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/it lacks the builtin locale provider \(PostgreSQL 17 or newer\)/);
    await expectNothingDone(target, name, backups.builtin);
  });

  test('verify fails as such a restore would, before downloading anything', async () => {
    const result = await verify(backups.german);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /cannot be restored into the verification's PostgreSQL 17\.\d+ server, as into any server like it: it lacks the operating system locale de_DE\.UTF-8; nothing was downloaded/,
    );
    const folder = path.join(dir, databaseSegment(germanDb), backups.german.id);
    const reports = readdirSync(folder).filter((f) => f.startsWith('verify-report-'));
    expect(reports).toHaveLength(1);
    const report = JSON.parse(readFileSync(path.join(folder, reports[0]), 'utf8')) as VerifyReport;
    expect(report.status).toBe('failed');
    expect(report.checks.checksums).toEqual([]);
    expect(Object.keys(report.timings).filter((t) => ['globals', 'download', 'load'].includes(t))).toEqual(
      [],
    );
  });

  test('a migration into such a target is refused by its preflight', async () => {
    const name = uniqueName('migrated');
    const result = await runCli([
      'migrate',
      '--source',
      sourceUrl(germanSource(), germanDb),
      '--target',
      sourceUrl(targets[17](), name),
      '--store',
      store,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /cannot hold .*\(UTF8, de_DE\.UTF-8\): it lacks the operating system locale de_DE\.UTF-8/,
    );
  });
});

test("a migration creates the target database with the source's locale provider and ICU locale", async () => {
  const source = uniqueName('icumigrate');
  const target = targets[17]();
  const name = uniqueName('icumigrated');
  await wordsDatabase(
    pg15,
    source,
    "ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LC_COLLATE 'C' LC_CTYPE 'C'",
  );
  try {
    const result = await runCli([
      'migrate',
      '--source',
      sourceUrl(pg15, source),
      '--target',
      sourceUrl(target, name),
      '--store',
      store,
    ]);
    expect(result.stderr).not.toMatch(/pgferry:/);
    expect(result.code).toBe(0);
    expect(await localeOf(target, name)).toEqual(await localeOf(pg15, source));
    expect(await sortOrders(target, name)).toEqual(await sortOrders(pg15, source));
  } finally {
    await dropDatabase(pg15, source);
    await dropDatabase(target, name);
  }
});
