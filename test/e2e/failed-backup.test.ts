/**
 * A dump that fails after writing part of its output must never become a backup: the workflow's
 * cleanup removes everything the attempt stored, and the failure is reported.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { currentLease } from '../../core/lease';
import { LocalStore } from '../../core/store';
import { S3Store } from '../../core/store/s3-store';
import { extraPgBinDirs, runCli, runMigrate, sourceUrl } from '../support/cli';
import { createSeededDatabase, databaseExists, dropDatabase, testEnv, uniqueName } from '../support/env';
import { listS3Keys } from '../support/store';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('failing');

/**
 * A pg_dump that runs the real one (its whole output reaches the store) and then exits 3, as a
 * pg_dump does that fails late (e.g. a lost connection after the data was written).
 */
function failingPgDumpDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-failing-pg_dump-'));
  mkdirSync(path.join(dir, 'bin'));
  const script = path.join(dir, 'bin', 'pg_dump');
  writeFileSync(
    script,
    `#!/bin/sh\n/usr/lib/postgresql/15/bin/pg_dump "$@" || exit $?\n[ "$1" = "--version" ] && exit 0\necho "pg_dump: error: injected failure after the output" >&2\nexit 3\n`,
  );
  chmodSync(script, 0o755);
  writeFileSync(
    path.join(dir, 'bin', 'pg_dumpall'),
    '#!/bin/sh\nexec /usr/lib/postgresql/15/bin/pg_dumpall "$@"\n',
  );
  chmodSync(path.join(dir, 'bin', 'pg_dumpall'), 0o755);
  return path.join(dir, 'bin');
}

beforeAll(async () => {
  await createSeededDatabase(
    pg,
    database,
    'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g',
  );
});
afterAll(() => dropDatabase(pg, database));

test.each([
  {
    kind: 'local folder',
    store: () => `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-failed-'))}`,
    s3: false,
  },
  { kind: 'S3-compatible', store: () => `s3://${env.s3.bucket}/${uniqueName('failed')}`, s3: true },
])('a pg_dump failing after its output leaves nothing in a $kind store', async ({ store, s3 }) => {
  const url = store();
  const storeEnv = s3 ? env.s3.env() : {};
  const result = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', url], {
    env: { ...storeEnv, PGFERRY_PG_BIN_DIRS: [failingPgDumpDir(), ...extraPgBinDirs()].join(':') },
  });
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/^pgferry: pg_dump failed \(3\): .*injected failure after the output/);
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);

  const listed = await runCli(['list', '--store', url, '--json'], { env: storeEnv });
  expect(JSON.parse(listed.stdout)).toEqual([]);
  const leaseStore = s3
    ? new S3Store(env.s3.bucket, url.split('/').slice(3).join('/'), new S3Client(env.s3.clientConfig()))
    : new LocalStore(url.slice('file://'.length));
  expect(await currentLease(leaseStore, database)).toBeUndefined();
  if (s3) {
    expect(await listS3Keys(url)).toEqual([]);
  } else {
    const dir = url.slice('file://'.length);
    const left = existsSync(path.join(dir, database)) ? readdirSync(path.join(dir, database)) : [];
    expect(left).toEqual([]);
  }

  // The same source then backs up fine: the failure left nothing in the way.
  const retry = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', url], {
    env: storeEnv,
  });
  expect(retry.code).toBe(0);
});

describe('a row larger than PostgreSQL can send', () => {
  const huge = uniqueName('hugerow');
  beforeAll(async () => {
    // 537,000,000 bytes: their COPY text (hex, two characters a byte) is just over 1 GB.
    await createSeededDatabase(
      pg,
      huge,
      `CREATE TABLE "Blobs" (id int PRIMARY KEY, b bytea);
       INSERT INTO "Blobs" VALUES (1, convert_to(repeat(repeat('x', 1000000), 537), 'UTF8')), (2, '\\x01');
       CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 1000) g;`,
    );
  }, 120_000);
  afterAll(() => dropDatabase(pg, huge));

  test('fails the backup with one line naming the table and what to do, and the advice works', async () => {
    const url = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-huge-'))}`;
    const result = await runCli(['backup', '--source', sourceUrl(pg, huge), '--store', url]);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      /^pgferry: table public\."Blobs" has a row PostgreSQL cannot send: its COPY text needs 1,074,000,00\d bytes, over PostgreSQL's limit of 1 GB/,
    );
    const listed = await runCli(['list', '--store', url, '--json']);
    expect(JSON.parse(listed.stdout)).toEqual([]);

    // The pattern the line suggests is pg_dump's own: the rest of the database backs up with it.
    const pattern = /--exclude-table-data '([^']+)'/.exec(result.stderr)?.[1];
    expect(pattern).toBe('public."Blobs"');
    const rest = await runCli([
      'backup',
      '--source',
      sourceUrl(pg, huge),
      '--store',
      url,
      '--exclude-table-data',
      pattern ?? '',
      '--json',
    ]);
    expect(rest.code).toBe(0);
    const rows = Object.fromEntries(
      (JSON.parse(rest.stdout).tables as { name: string; rows: number }[]).map((t) => [t.name, t.rows]),
    );
    expect(rows).toMatchObject({ small: 1000 });
  }, 180_000);

  test('fails a migration with the same line, saying what to do for a migration, and leaves no target', async () => {
    const target = uniqueName('hugerow_migrated');
    const result = await runMigrate(
      sourceUrl(pg, huge),
      sourceUrl(pg, target),
      `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-huge-migrate-'))}`,
    );
    expect(result.code).toBe(1);
    // The estimate's line, then the failure's one line.
    expect(result.stderr.split('\n').filter((line) => line.startsWith('pgferry:'))).toHaveLength(1);
    expect(result.stderr).toMatch(
      /^pgferry: table public\."Blobs" has a row PostgreSQL cannot send: .* No pg_dump-based migration can move it: keep such values as large objects, .* \(the partially migrated database \S+ was dropped\)$/m,
    );
    expect(await databaseExists(pg, target)).toBe(false);
  }, 180_000);
});
