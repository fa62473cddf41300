import { tmpdir } from 'node:os';
import type { DatabaseBindings } from '../../../core/bindings';
import type { Deployment } from '../../../core/deployment';
import { DRILL_RESTORE, type RestoreSelection } from '../../../core/strategy';
import {
  backupTaskSize,
  checkRestoreDisk,
  dumpTaskSize,
  restoreDiskNeeded,
  restoreDiskUse,
  restoreTaskSize,
} from '../../../core/task-size';

const GiB = 1024 ** 3;
const onAws: Deployment = { onAws: true, bindings: { version: 1, bindings: [] } as DatabaseBindings };

test('a dump streams: no disk beyond the included 21 GiB, a second vCPU for a big database', () => {
  expect(dumpTaskSize(100 * 1024 ** 2)).toEqual({ cpu: '1024', memoryMiB: '2048', ephemeralStorageGiB: 21 });
  expect(dumpTaskSize(500 * GiB)).toEqual({ cpu: '2048', memoryMiB: '4096', ephemeralStorageGiB: 21 });
});

test("a backup's task grows with the database (room for the pg_dumps of --jobs)", () => {
  expect(backupTaskSize(100 * 1024 ** 2)).toEqual(dumpTaskSize(100 * 1024 ** 2));
  expect(backupTaskSize(5 * GiB)).toEqual({ cpu: '2048', memoryMiB: '4096', ephemeralStorageGiB: 21 });
  expect(backupTaskSize(50 * GiB)).toEqual({ cpu: '4096', memoryMiB: '8192', ephemeralStorageGiB: 21 });
  expect(backupTaskSize(500 * GiB)).toEqual({ cpu: '4096', memoryMiB: '8192', ephemeralStorageGiB: 21 });
});

test('a restore gets disk for the download and the decompressed dump, a verify also for its local server, up to 200 GiB', () => {
  const use = { storedBytes: 10 * GiB, uncompressedBytes: 30 * GiB };
  expect(restoreTaskSize(use, false).ephemeralStorageGiB).toBe(Math.ceil(40 * 1.2 + 5));
  expect(restoreTaskSize(use, true).ephemeralStorageGiB).toBe(Math.ceil(70 * 1.2 + 5));
  expect(
    restoreTaskSize({ storedBytes: 300 * GiB, uncompressedBytes: 1000 * GiB }, true).ephemeralStorageGiB,
  ).toBe(200);
  expect(restoreTaskSize({ storedBytes: 100, uncompressedBytes: 1024 }, false).ephemeralStorageGiB).toBe(21);
});

test("a backup's disk use is its stored objects and its decompressed dump, from the manifest", () => {
  expect(restoreDiskUse({ objects: [{ bytes: 7 }, { bytes: 3 }] as never, uncompressedBytes: 40 })).toEqual({
    storedBytes: 10,
    uncompressedBytes: 40,
  });
});

test('on AWS a restore or verify needing more than the 200 GiB of a Fargate task is refused, naming the sizes', async () => {
  const fits = {
    id: '20261121T233200Z-3d6d1f',
    use: { storedBytes: 40 * GiB, uncompressedBytes: 120 * GiB },
  };
  await expect(checkRestoreDisk({ ...fits, withLocalServer: false }, onAws, {})).resolves.toBeUndefined();
  await expect(checkRestoreDisk({ ...fits, withLocalServer: true }, onAws, {})).rejects.toThrow(
    /^backup 20261121T233200Z-3d6d1f needs 341\.0 GiB of disk \(40\.0 GiB downloaded and 120\.0 GiB decompressed, and 120\.0 GiB restored into the verification's server, with a margin\): a Fargate task has at most 200 GiB: run it with the CLI \(without --aws\) on a machine with the disk; nothing was downloaded$/,
  );
});

test('locally the limit is the free space where the runner works', async () => {
  const huge = { id: '20261121T233200Z-3d6d1f', use: { storedBytes: 0, uncompressedBytes: 2 ** 60 } };
  await expect(
    checkRestoreDisk({ ...huge, withLocalServer: false }, { onAws: false }, { PGFERRY_WORK_DIR: tmpdir() }),
  ).rejects.toThrow(
    /GiB is free in .*: free space, or point PGFERRY_WORK_DIR at a larger disk; nothing was downloaded$/,
  );
});

test('locally a restore needs its files and a margin, not the headroom of a task', () => {
  const use = { storedBytes: 1 * 2 ** 30, uncompressedBytes: 2 * 2 ** 30 };
  expect(restoreDiskNeeded(use, false, false) / 2 ** 30).toBeCloseTo(3.6);
  expect(restoreDiskNeeded(use, true, false) / 2 ** 30).toBeCloseTo(6);
  expect(restoreDiskNeeded(use, false, true) / 2 ** 30).toBeCloseTo(8.6);
  expect(restoreDiskNeeded({ storedBytes: 2_000_000, uncompressedBytes: 6_000_000 }, false, false)).toBe(
    9_600_000,
  );
});

/** A manifest's objects as a backup of this pgferry records them (`definitionsBytes`, `largeObjects`). */
function recorded(uncompressedBytes: number, archive: { definitionsBytes?: number; largeObjects?: boolean }) {
  return {
    uncompressedBytes,
    objects: [
      { key: 'dump.pgdump.zst', kind: 'dump', bytes: uncompressedBytes / 4, ...archive },
      { key: 'globals.sql', kind: 'globals', bytes: 1000 },
    ] as never,
  };
}
const create: RestoreSelection = { mode: 'create', withGlobals: false, schemas: [], tables: [] };

test('a create restore of a backup without large objects streams: its disk is the definitions alone', () => {
  const manifest = recorded(500 * GiB, { definitionsBytes: 2 * 1024 ** 2, largeObjects: false });
  const use = restoreDiskUse(manifest, create);
  expect(use).toEqual({
    storedBytes: 125 * GiB + 1000,
    uncompressedBytes: 500 * GiB,
    definitionsBytes: 2 * 1024 ** 2,
  });
  expect(restoreDiskNeeded(use, false, false)).toBe(2 * 1024 ** 2 * 1.2);
  // Fargate's included disk; the vCPUs are still the large dump's.
  expect(restoreTaskSize(use, false)).toEqual({ cpu: '2048', memoryMiB: '8192', ephemeralStorageGiB: 21 });
});

test('every other restore is sized for its files: clean, --with-globals, --schema, --table, large objects, not UTF8, an older manifest', () => {
  const streamable = recorded(40 * GiB, { definitionsBytes: 1024, largeObjects: false });
  const files = { storedBytes: 10 * GiB + 1000, uncompressedBytes: 40 * GiB };
  const others: RestoreSelection[] = [
    { ...create, mode: 'clean' },
    { ...create, withGlobals: true },
    { ...create, schemas: ['app'] },
    { ...create, tables: ['t'] },
  ];
  for (const restore of others) {
    expect(restoreDiskUse(streamable, restore)).toEqual(files);
  }
  expect(restoreDiskUse(streamable)).toEqual(files); // none named
  expect(restoreDiskUse(recorded(40 * GiB, { definitionsBytes: 1024, largeObjects: true }), create)).toEqual({
    ...files,
    fromFilesBecause: 'its large objects are restored from files, not streamed',
  });
  // A database in an encoding whose names pgferry cannot decode exactly: the COPY sessions cannot
  // name its tables. Those it decodes (LATIN1, WIN1252, EUC_JP…) stream.
  for (const encoding of ['SQL_ASCII', 'EUC_TW', 'MULE_INTERNAL']) {
    expect(restoreDiskUse({ ...streamable, requires: { encoding } }, create)).toEqual({
      ...files,
      fromFilesBecause: `its ${encoding} archive is restored from files, not streamed`,
    });
  }
  for (const encoding of ['LATIN1', 'WIN1252', 'EUC_JP', 'KOI8R']) {
    expect(restoreDiskUse({ ...streamable, requires: { encoding } }, create)).toEqual({
      ...files,
      definitionsBytes: 1024,
    });
  }
  expect(restoreDiskUse({ ...streamable, requires: { encoding: 'UTF8' } }, create)).toEqual({
    ...files,
    definitionsBytes: 1024,
  });
  expect(restoreDiskUse(recorded(40 * GiB, {}), create)).toEqual(files);
  // An archive that does not say (here a parallel backup's side one) keeps the files' sizing.
  const parallel = recorded(40 * GiB, { definitionsBytes: 1024, largeObjects: false });
  (parallel.objects as unknown[]).push({ key: 'table-data-1.pgdump.zst', kind: 'table-data', bytes: 0 });
  expect(restoreDiskUse(parallel, create)).toEqual(files);
  expect(
    restoreTaskSize(restoreDiskUse(streamable, { ...create, mode: 'clean' }), false).ephemeralStorageGiB,
  ).toBe(Math.ceil(((50 * GiB + 1000) * 1.2) / GiB + 5));
});

test('locally a streamed create restore of a backup larger than the disk is accepted, a clean restore of it refused', async () => {
  const huge = recorded(2 ** 60, { definitionsBytes: 1024 ** 2, largeObjects: false });
  const local = { onAws: false } as const;
  const env = { PGFERRY_WORK_DIR: tmpdir() };
  const check = (restore: RestoreSelection) =>
    checkRestoreDisk(
      { id: '20261121T233200Z-3d6d1f', use: restoreDiskUse(huge, restore), withLocalServer: false },
      local,
      env,
    );
  await expect(check(create)).resolves.toBeUndefined();
  await expect(check({ ...create, mode: 'clean' })).rejects.toThrow(
    /^backup 20261121T233200Z-3d6d1f needs \d+\.\d GiB of disk \(\d+\.\d GiB downloaded and \d+\.\d GiB decompressed, with a margin\): \d+\.\d GiB is free in .*; nothing was downloaded$/,
  );
});

test('on AWS a streamable 500 GiB backup fits a task; with large objects it is refused, saying why it is not streamed', async () => {
  const check = (manifest: ReturnType<typeof recorded>) =>
    checkRestoreDisk(
      { id: '20261121T233200Z-3d6d1f', use: restoreDiskUse(manifest, create), withLocalServer: false },
      onAws,
      {},
    );
  await expect(
    check(recorded(500 * GiB, { definitionsBytes: 1024 ** 2, largeObjects: false })),
  ).resolves.toBeUndefined();
  await expect(
    check(recorded(500 * GiB, { definitionsBytes: 1024 ** 2, largeObjects: true })),
  ).rejects.toThrow(
    /^backup 20261121T233200Z-3d6d1f needs 755\.0 GiB of disk \(125\.0 GiB downloaded and 500\.0 GiB decompressed, with a margin; its large objects are restored from files, not streamed\): a Fargate task has at most 200 GiB: run it with the CLI \(without --aws\) on a machine with the disk; nothing was downloaded$/,
  );
});

test("a verification's drill of a streamable backup needs its definitions and the restored database: 100 GiB fits a Fargate task", async () => {
  const id = '20261121T233200Z-3d6d1f';
  const use = restoreDiskUse(
    recorded(100 * GiB, { definitionsBytes: 2 * 1024 ** 2, largeObjects: false }),
    DRILL_RESTORE,
  );
  expect(use).toEqual({
    storedBytes: 25 * GiB + 1000,
    uncompressedBytes: 100 * GiB,
    definitionsBytes: 2 * 1024 ** 2,
  });
  expect(restoreDiskNeeded(use, true, false)).toBe((100 * GiB + 2 * 1024 ** 2) * 1.2);
  expect(restoreTaskSize(use, true)).toEqual({ cpu: '2048', memoryMiB: '8192', ephemeralStorageGiB: 126 });
  await expect(checkRestoreDisk({ id, use, withLocalServer: true }, onAws, {})).resolves.toBeUndefined();
  const big = restoreDiskUse(
    recorded(500 * GiB, { definitionsBytes: 2 * 1024 ** 2, largeObjects: false }),
    DRILL_RESTORE,
  );
  await expect(checkRestoreDisk({ id, use: big, withLocalServer: true }, onAws, {})).rejects.toThrow(
    /^backup \S+ needs 605\.0 GiB of disk \(0\.0 GiB of the archive's definitions, its data streamed, and 500\.0 GiB restored into the verification's server, with a margin\): a Fargate task has at most 200 GiB/,
  );
});

test("a verification's drill of a backup with large objects is sized for its files and the restored database", async () => {
  const use = restoreDiskUse(
    recorded(100 * GiB, { definitionsBytes: 2 * 1024 ** 2, largeObjects: true }),
    DRILL_RESTORE,
  );
  expect(restoreDiskNeeded(use, true, false)).toBe((225 * GiB + 1000) * 1.2);
  expect(restoreTaskSize(use, true).ephemeralStorageGiB).toBe(200);
  await expect(
    checkRestoreDisk({ id: '20261121T233200Z-3d6d1f', use, withLocalServer: true }, onAws, {}),
  ).rejects.toThrow(
    /^backup \S+ needs 275\.0 GiB of disk \(25\.0 GiB downloaded and 100\.0 GiB decompressed, and 100\.0 GiB restored into the verification's server, with a margin; its large objects are restored from files, not streamed\)/,
  );
});
