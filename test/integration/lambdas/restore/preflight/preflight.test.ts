/**
 * The restore preflight's read of a backup's TOC (lambdas/restore/preflight/preflight.ts
 * `readBackupToc`), on a real backup in a folder store: it reads only the archive's first bytes,
 * and it always returns. It once waited for the end of a zstd decompressor it had destroyed, which
 * now and then never came (within the first 100 reads of this test, on the code before): a clean restore then hung in preflight until the
 * state's 120 s timeout (and failed CI, in test/e2e/parallel-backup.test.ts). And its disk check
 * (core/task-size.ts), by the kind of restore: a streamed one writes the archive's definitions alone.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type BackupManifest, RestoreRequestSchema } from '../../../../../core/contracts';
import { openStore } from '../../../../../core/store';
import { catalogNameOf, manifestKey } from '../../../../../core/store-keys';
import { preflightRestore, readBackupToc } from '../../../../../lambdas/restore/preflight/preflight';
import { backupOf } from '../../../../support/backed-up-database';
import { runCli, sourceUrl } from '../../../../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../../../../support/env';

const env = testEnv();
const pg = env.server(15);
const source = uniqueName('preflight_toc');

beforeAll(() =>
  createSeededDatabase(
    pg,
    source,
    `CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 4) AS v FROM generate_series(1, 20000) g;
     CREATE TABLE parent (id integer PRIMARY KEY, v text);
     INSERT INTO parent SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 15000) g;
     CREATE TABLE child (id serial PRIMARY KEY, parent_id integer REFERENCES parent, note text);
     INSERT INTO child (parent_id, note) SELECT 1 + g % 15000, md5(g::text) FROM generate_series(1, 40000) g;
     CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 10) g;`,
  ),
);
afterAll(() => dropDatabase(pg, source));

test('reads the TOC of the zstd main archive of a parallel backup (more than one read of the store), every time: 1,000 reads, each within 5 s', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-preflight-toc-'));
  const backedUp = await runCli([
    'backup',
    '--source',
    sourceUrl(pg, source),
    '--store',
    `file://${dir}`,
    '--json',
  ]);
  expect(backedUp).toMatchObject({ code: 0, stderr: '' });
  const manifest = JSON.parse(backedUp.stdout) as BackupManifest;
  const dump = manifest.objects.find((o) => o.kind === 'dump');
  expect(dump?.compression.codec).toBe('zstd');
  // More than the folder store's 1 MiB reads: the decompressor is destroyed with input to come.
  expect(dump?.bytes).toBeGreaterThan(1024 * 1024);
  const store = await openStore(`file://${dir}`);
  for (let i = 0; i < 1000; i++) {
    let timer: NodeJS.Timeout | undefined;
    const toc = await Promise.race([
      readBackupToc(store, manifest),
      new Promise<'hung'>((resolve) => {
        timer = setTimeout(() => resolve('hung'), 5000);
      }),
    ]);
    clearTimeout(timer);
    if (toc === 'hung') throw new Error(`read ${i + 1} of the TOC did not return within 5 s`);
    expect(
      toc
        ?.filter((e) => e.desc === 'TABLE')
        .map((e) => e.tag)
        .sort(),
    ).toEqual(['big', 'child', 'parent', 'small']);
  }
}, 120_000);

test('a create restore of a backup larger than the disk streams: accepted, its task on the least disk; a clean restore of it is refused', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-preflight-disk-'));
  const manifest = await backupOf(pg, source, `file://${dir}`);
  const dump = manifest.objects.find((o) => o.kind === 'dump');
  expect(dump).toMatchObject({ largeObjects: false, definitionsBytes: expect.any(Number) });
  // Its manifest says 1 PiB of dump: more than any disk here.
  const store = openStore(`file://${dir}`);
  await store.putJson(manifestKey(catalogNameOf(manifest), manifest.id), {
    ...manifest,
    uncompressedBytes: 2 ** 50,
  });
  const request = (mode: 'create' | 'clean', database: string) =>
    RestoreRequestSchema.parse({
      store: `file://${dir}`,
      backup: manifest.id,
      name: catalogNameOf(manifest),
      target: pg.connection(database),
      mode,
      force: true,
    });
  const deps = {
    openStore,
    env: { ...process.env, PGFERRY_TARGET_PASSWORD: pg.password, PGFERRY_WORK_DIR: dir },
    deployment: { onAws: false } as const,
  };
  const plan = await preflightRestore(request('create', uniqueName('preflight_disk')), deps);
  expect(plan.taskSize).toEqual({ cpu: '2048', memoryMiB: '8192', ephemeralStorageGiB: 21 });
  await expect(preflightRestore(request('clean', source), deps)).rejects.toThrow(
    new RegExp(
      `^backup ${manifest.id} needs \\d+\\.\\d GiB of disk \\(\\d+\\.\\d GiB downloaded and 1048576\\.0 GiB decompressed, with a margin\\): ` +
        `\\d+\\.\\d GiB is free in ${dir}: free space, or point PGFERRY_WORK_DIR at a larger disk; nothing was downloaded$`,
    ),
  );
}, 120_000);
