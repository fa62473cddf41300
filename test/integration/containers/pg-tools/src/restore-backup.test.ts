/**
 * The restore runner's overlap (containers/pg-tools/src/restore-backup.ts): a new target database
 * is created, empty and marked incomplete, while the backup is still downloaded and verified; a
 * checksum that fails then drops it, with nothing of the backup in it. Against a real server and a
 * real backup in a folder store whose download waits until the target database exists (so the test
 * fails when the database is created only after the download).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { restoreBackup } from '../../../../../containers/pg-tools/src/restore-backup';
import { RestoreProgress } from '../../../../../containers/pg-tools/src/run';
import type { BackupManifest } from '../../../../../core/contracts';
import { readIncompleteMark } from '../../../../../core/postgres/incomplete-database';
import type { BackupStore } from '../../../../../core/store';
import { LocalStore } from '../../../../../core/store';
import { backupObjectKey, catalogNameOf } from '../../../../../core/store-keys';
import { backupOf } from '../../../../support/backed-up-database';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../../support/env';

const pg = testEnv().server(15);
const source = uniqueName('overlap_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-overlap-'));
const store = path.join(dir, 'store');
let manifest: BackupManifest;

beforeAll(async () => {
  await createSeededDatabase(
    pg,
    source,
    'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;',
  );
  manifest = await backupOf(pg, source, store);
}, 300_000);

afterAll(async () => {
  await dropDatabase(pg, source);
  rmSync(dir, { recursive: true, force: true });
});

test('a corrupt backup: the database created during the download is dropped, with nothing of the backup in it', async () => {
  const target = uniqueName('overlap_bad');
  const local = new LocalStore(store);
  // What the database held while the download waited for it.
  let seen: { mark: string | undefined; tables: number } | undefined;
  const waitForTarget = async () => {
    for (let i = 0; i < 200; i++) {
      const exists = await withClient(pg, 'postgres', async (c) => {
        const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [target]);
        if (!rows.length) return false;
        const mark = await readIncompleteMark(c, target);
        seen = { mark: mark?.id, tables: -1 };
        return mark !== undefined;
      });
      if (exists) {
        const tables = await withClient(pg, target, (c) =>
          c.query("SELECT 1 FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"),
        );
        if (seen) seen.tables = tables.rowCount ?? -1;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the target database was not created while the backup downloaded');
  };
  // A folder store whose objects arrive only once the target database exists, the dump's with one
  // byte flipped; read as from a remote store (no local file to decompress from).
  const dumpKey = backupObjectKey(catalogNameOf(manifest), manifest.id, 'dump.pgdump.zst');
  const gated: Pick<BackupStore, 'download'> = {
    download: async (key: string) => {
      await waitForTarget();
      if (key !== dumpKey) return local.download(key);
      const bytes = readFileSync(local.localFile(key));
      bytes[Math.floor(bytes.length / 2)] ^= 0x01;
      return Readable.from([bytes]);
    },
  };
  const progress = new RestoreProgress();
  const restoring = restoreBackup(
    manifest,
    {
      runId: '20261202T170000Z-0a1b2c',
      target: { host: pg.host, port: pg.port, user: pg.user, database: target, sslmode: 'disable' },
      password: pg.password,
      mode: 'create',
      withGlobals: false,
      noOwner: false,
      noAcl: false,
      schemas: [],
      tables: [],
      terminateConnections: false,
      jobs: 2,
      toastCompression: 'server-default',
    },
    progress,
    { store: gated as BackupStore, env: process.env },
  );
  await expect(restoring).rejects.toMatchObject({
    code: 'BackupCorrupt',
    message: expect.stringMatching(
      new RegExp(
        `failed its checksum .*nothing of the backup was written to the target \\(the database ${target}, created empty while the backup was verified, was dropped\\)$`,
      ),
    ),
  });
  // It existed during the download: marked incomplete by this run, with no table.
  expect(seen).toEqual({ mark: '20261202T170000Z-0a1b2c', tables: 0 });
  expect(progress.timings.pgRestore).toBeUndefined();
  const left = await withClient(pg, 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_database WHERE datname = $1', [target]),
  );
  expect(left.rowCount).toBe(0);
}, 120_000);
