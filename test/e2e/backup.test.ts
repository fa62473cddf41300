/**
 * `pgferry backup` end to end, on real servers of several majors, into both store kinds: the
 * CLI runs the synthesized backup workflow, which runs the real pg_dump.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import * as path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import type { BackupManifest } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { backupOf } from '../support/backed-up-database';
import { pgTool, runCli, runTool, sourceUrl } from '../support/cli';
import { createDatabase, dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';
import { readStored, sha256 } from '../support/store';

const env = testEnv();

async function seed(major: number, database: string): Promise<void> {
  await createDatabase(env.server(major), database);
  await withClient(env.server(major), database, async (c) => {
    await c.query(`
      CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, joined timestamptz DEFAULT now());
      INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 5000) g;
      CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, doc jsonb, total numeric(12,2));
      INSERT INTO orders (customer, doc, total)
        SELECT 1 + g % 5000, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7)), g * 1.25
        FROM generate_series(1, 20000) g;
      CREATE INDEX orders_customer ON orders (customer);
      CREATE TABLE empty_table (x int);`);
  });
}

/**
 * `definitionsBytes` is exactly the archive's header and TOC: its first that many bytes are an
 * archive pg_restore lists (the definitions file a streamed restore writes), one byte fewer is not.
 */
async function expectDefinitions(archive: Buffer, definitionsBytes: number | undefined, major: number) {
  expect(definitionsBytes).toBeGreaterThan(0);
  expect(definitionsBytes).toBeLessThan(archive.length);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-definitions-'));
  const list = (bytes: number) => {
    const file = path.join(dir, `first-${bytes}.pgdump`);
    writeFileSync(file, archive.subarray(0, bytes));
    return runTool(pgTool('pg_restore', major), ['--list', file]);
  };
  const whole = await list(definitionsBytes ?? 0);
  expect(whole.stdout.toString()).toMatch(/TABLE DATA public /);
  await expect(list((definitionsBytes ?? 0) - 1)).rejects.toThrow();
}

function storesFor(label: string): { kind: string; url: string; env: Record<string, string> }[] {
  const local = mkdtempSync(path.join(tmpdir(), `pgferry-store-${label}-`));
  return [
    { kind: 'local folder', url: `file://${local}`, env: {} },
    { kind: 'S3-compatible', url: `s3://${env.s3.bucket}/${uniqueName(label)}`, env: env.s3.env() },
  ];
}

describe.each(env.postgres.map((pg) => pg.major))('backup of PostgreSQL %i', (major) => {
  const database = uniqueName(`backup${major}`);
  beforeAll(() => seed(major, database));
  afterAll(() => dropDatabase(env.server(major), database));

  describe.each(storesFor(`pg${major}`))('into a $kind store', ({ url, env: storeEnv }) => {
    let manifest: BackupManifest;

    beforeAll(async () => {
      const result = await runCli(
        ['backup', '--source', sourceUrl(env.server(major), database), '--store', url, '--json'],
        {
          env: storeEnv,
        },
      );
      if (result.code !== 0) throw new Error(`backup failed (${result.code}): ${result.stderr}`);
      manifest = JSON.parse(result.stdout) as BackupManifest;
    });

    test('records a complete manifest with the server and pg_dump versions', () => {
      expect(manifest).toMatchObject({ schemaVersion: 1, database, status: 'complete', format: 'custom' });
      expect(manifest.server.major).toBe(major);
      expect(manifest.tool.pgDumpMajor).toBeGreaterThanOrEqual(major);
      expect(manifest.compression).toEqual({ codec: 'zstd', level: 1 });
      // Chosen by preflight from the (small) database's size and this machine's cores.
      expect(manifest.strategy).toEqual({
        format: 'custom',
        jobs: 1,
        upload: { partBytes: 5 * 1024 * 1024, queueSize: availableParallelism() >= 4 ? 4 : 2 },
      });
    });

    test('manifest checksums and sizes equal the stored bytes', async () => {
      for (const object of manifest.objects) {
        const bytes = await readStored(url, `${databaseSegment(database)}/${manifest.id}/${object.key}`);
        expect({ key: object.key, bytes: bytes.length, sha256: sha256(bytes) }).toEqual({
          key: object.key,
          bytes: object.bytes,
          sha256: object.sha256,
        });
      }
    });

    test('the manifest is stored beside the objects', async () => {
      const stored = JSON.parse(
        (await readStored(url, `${databaseSegment(database)}/${manifest.id}/manifest.json`)).toString(),
      );
      expect(stored).toEqual(manifest);
    });

    test("row counts equal the source's", async () => {
      const expected = await withClient(env.server(major), database, async (c) => {
        const counts = [];
        for (const name of ['customers', 'empty_table', 'orders']) {
          const { rows } = await c.query(`SELECT count(*)::int AS n FROM ${quoteIdent(name)}`);
          counts.push({ schema: 'public', name, rows: rows[0].n });
        }
        return counts;
      });
      expect(manifest.tables).toMatchObject(expected);
    });

    test('the decompressed dump is a valid archive for pg_restore --list', async () => {
      const dump = manifest.objects.find((o) => o.kind === 'dump');
      if (!dump) throw new Error('no dump object');
      const compressed = await readStored(url, `${databaseSegment(database)}/${manifest.id}/${dump.key}`);
      const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-dump-')), 'dump.pgdump');
      writeFileSync(file, zstdDecompressSync(compressed));
      const { stdout } = await runTool(pgTool('pg_restore', manifest.tool.pgDumpMajor), ['--list', file]);
      const toc = stdout.toString();
      expect(toc).toMatch(/TABLE DATA public customers/);
      expect(toc).toMatch(/TABLE DATA public orders/);
      expect(toc).toMatch(/INDEX public orders_customer/);
    });

    test("the manifest tells a restore what it writes to disk: the archive's definitions (its header and TOC, to the byte), and no large objects", async () => {
      const dump = manifest.objects.find((o) => o.kind === 'dump');
      if (!dump) throw new Error('no dump object');
      expect(dump.largeObjects).toBe(false);
      const globals = manifest.objects.find((o) => o.kind === 'globals');
      expect(globals).not.toHaveProperty('definitionsBytes');
      expect(globals).not.toHaveProperty('largeObjects');
      const compressed = await readStored(url, `${databaseSegment(database)}/${manifest.id}/${dump.key}`);
      await expectDefinitions(
        zstdDecompressSync(compressed),
        dump.definitionsBytes,
        manifest.tool.pgDumpMajor,
      );
    });

    test('the globals (roles) are stored without passwords', async () => {
      const globals = await readStored(url, `${databaseSegment(database)}/${manifest.id}/globals.sql`);
      expect(globals.toString()).toMatch(/CREATE ROLE postgres;/);
      expect(globals.toString()).not.toMatch(/PASSWORD/);
      expect(manifest.globals).toEqual({ rolePasswords: false });
    });

    test('pgferry list shows the backup', async () => {
      const listed = await runCli(['list', '--store', url, '--database', database, '--json'], {
        env: storeEnv,
      });
      expect(listed.code).toBe(0);
      expect((JSON.parse(listed.stdout) as BackupManifest[]).map((m) => m.id)).toEqual([manifest.id]);
    });

    test('pgferry show finds the backup by its id alone, without --database', async () => {
      const shown = await runCli(['show', '--store', url, '--backup', manifest.id, '--json'], {
        env: storeEnv,
      });
      expect(shown).toMatchObject({ code: 0, stderr: '' });
      expect((JSON.parse(shown.stdout) as { manifest: BackupManifest }).manifest.id).toBe(manifest.id);
    });
  });
});

describe('backup of a database with a large object', () => {
  const pg = env.postgres[env.postgres.length - 1];
  const database = uniqueName('backuplo');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-store-lo-'));
  beforeAll(async () => {
    await seed(pg.major, database);
    await withClient(pg, database, (c) => c.query("SELECT lo_from_bytea(0, 'x')"));
  });
  afterAll(() => dropDatabase(pg, database));

  test('the manifest says so (a restore of it needs files), and its definitions are the header and TOC', async () => {
    const manifest = await backupOf(pg, database, `file://${store}`);
    const dump = manifest.objects.find((o) => o.kind === 'dump');
    if (!dump) throw new Error('no dump object');
    expect(dump.largeObjects).toBe(true);
    const compressed = await readStored(
      `file://${store}`,
      `${databaseSegment(database)}/${manifest.id}/${dump.key}`,
    );
    await expectDefinitions(zstdDecompressSync(compressed), dump.definitionsBytes, manifest.tool.pgDumpMajor);
  });
});
