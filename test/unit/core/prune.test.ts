/**
 * Pruning deletes a backup's manifest first, so an interrupted prune never leaves a listed backup
 * missing objects, and leaves incomplete folders alone.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { listBackups } from '../../../core/catalog';
import { executePrune, planPrune } from '../../../core/prune';
import { retentionPolicy } from '../../../core/retention';
import { type BackupStore, LocalStore } from '../../../core/store';
import { backupObjectKey, newBackupId } from '../../../core/store-keys';
import { dailyTimes, writeSyntheticBackups } from '../../support/backups';

const keepOne = retentionPolicy({ keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0 });
const now = new Date('2026-03-10T12:00:00Z');

function freshDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'pgferry-prune-'));
}

/** The store, failing as a crash would right after the first deletion of each backup. */
function crashingAfterManifestDeletion(store: BackupStore): BackupStore {
  return Object.assign(Object.create(store) as BackupStore, {
    deletePrefix: async () => {
      throw new Error('crashed');
    },
  });
}

test('an interrupted prune leaves the backup unlisted, never listed without its objects', async () => {
  const dir = freshDir();
  const store = new LocalStore(dir);
  const [older, newest] = await writeSyntheticBackups(store, 'shop', dailyTimes('2026-03-08', '2026-03-09'));
  const plan = await planPrune(store, keepOne, now);

  await expect(executePrune(crashingAfterManifestDeletion(store), plan)).rejects.toThrow('crashed');

  expect((await listBackups(store)).map((m) => m.id)).toEqual([newest.id]);
  expect(existsSync(path.join(dir, 'shop', older.id, 'dump.pgdump'))).toBe(true);
  expect(existsSync(path.join(dir, 'shop', older.id, 'manifest.json'))).toBe(false);
});

test('incomplete folders older than a day are reported and left alone; younger ones are not reported', async () => {
  const dir = freshDir();
  const store = new LocalStore(dir);
  await writeSyntheticBackups(store, 'shop', dailyTimes('2026-03-08', '2026-03-09'));
  const stale = newBackupId(new Date('2026-03-08T10:00:00Z'));
  const running = newBackupId(new Date('2026-03-10T11:00:00Z'));
  for (const id of [stale, running]) {
    await store.upload(backupObjectKey('shop', id, 'dump.pgdump'), Readable.from([Buffer.from('partial')]));
  }

  const plan = await planPrune(store, keepOne, now);
  expect(plan.incomplete).toEqual([
    {
      database: 'shop',
      backupId: stale,
      startedAt: '2026-03-08T10:00:00.000Z',
      folder: `shop/${stale}/`,
      objects: 1,
      bytes: 7,
      reason: 'no manifest',
    },
  ]);
  expect(await executePrune(store, plan)).toBe(1);
  expect(existsSync(path.join(dir, 'shop', stale, 'dump.pgdump'))).toBe(true);
  expect(existsSync(path.join(dir, 'shop', running, 'dump.pgdump'))).toBe(true);
});
