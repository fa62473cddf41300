/**
 * The pure parts of backup sets: which databases a set takes, what its manifest says about members
 * that failed, reading sets beside the catalog (never as backups), `latest`, and pins.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  globMatches,
  type MemberResult,
  readSets,
  recordSet,
  resolveSet,
  selectDatabases,
} from '../../../core/backup-set';
import { scanStore } from '../../../core/catalog';
import type { BackupManifest, Connection } from '../../../core/contracts';
import { pinBackup, unpinBackup } from '../../../core/pin';
import { planPrune } from '../../../core/prune';
import { retentionPolicy } from '../../../core/retention';
import { LocalStore } from '../../../core/store';
import { newBackupId, setManifestKey } from '../../../core/store-keys';
import { dailyTimes, writeSyntheticBackups } from '../../support/backups';

const source: Connection = {
  host: 'db.example',
  port: 5432,
  database: 'postgres',
  user: 'admin',
  sslmode: 'prefer',
};
const server = { version: '15.18', major: 15 };

function freshStore(): LocalStore {
  return new LocalStore(mkdtempSync(path.join(tmpdir(), 'pgferry-sets-')));
}

describe('selectDatabases', () => {
  const all = ['postgres', 'shop', 'shop_archive', `it's ☃`, 'crm'];

  test('every database but the excluded ones, sorted', () => {
    expect(selectDatabases(all, { include: [], exclude: ['crm'] })).toEqual(
      [`it's ☃`, 'postgres', 'shop', 'shop_archive'].sort(),
    );
  });

  test('include patterns (* and ?) select; exclude wins', () => {
    expect(selectDatabases(all, { include: ['shop*', 'cr?'], exclude: ['shop_archive'] })).toEqual([
      'crm',
      'shop',
    ]);
  });

  test('a pattern is literal but for * and ?', () => {
    expect(globMatches('a.b', 'a.b')).toBe(true);
    expect(globMatches('a.b', 'axb')).toBe(false);
    expect(globMatches('(x)+', '(x)+')).toBe(true);
    expect(globMatches('it*☃', `it's ☃`)).toBe(true);
    expect(globMatches('Shop', 'shop')).toBe(false);
  });
});

/** Complete backups of `names`, each (in memory) with a globals object, as a real member has. */
async function members(store: LocalStore, names: string[]): Promise<BackupManifest[]> {
  const out: BackupManifest[] = [];
  for (const name of names) {
    const [manifest] = await writeSyntheticBackups(store, name, dailyTimes('2026-03-09', '2026-03-09'));
    const globals = { ...manifest.objects[0], key: 'globals.sql', kind: 'globals' as const };
    out.push({ ...manifest, objects: [...manifest.objects, globals] });
  }
  return out;
}

describe('recordSet', () => {
  test('a set with a failed member is failed, names it, and still names its complete members and the roles', async () => {
    const store = freshStore();
    const [crm, shop] = await members(store, ['crm', 'shop']);
    const results: MemberResult[] = [
      { database: 'shop', manifest: shop },
      { database: 'ledger', error: { name: 'DumpFailed', message: 'could not lock public.t' } },
      { database: 'crm', manifest: crm },
    ];
    const setId = newBackupId(new Date('2026-03-09T01:00:00Z'));
    const set = await recordSet(store, {
      setId,
      startedAt: '2026-03-09T01:00:00.000Z',
      source,
      server,
      selection: { include: [], exclude: [] },
      parallel: 2,
      results,
    });
    expect(set.status).toBe('failed');
    expect(set.members.map((m) => m.database)).toEqual(['crm', 'shop']);
    expect(set.failed).toEqual([
      { database: 'ledger', error: { name: 'DumpFailed', message: 'could not lock public.t' } },
    ]);
    expect(await store.getJson(setManifestKey(setId))).toEqual(set);
  });

  test('sets live beside the catalog: never listed as backups; latest is the newest complete set', async () => {
    const store = freshStore();
    const [shop] = await members(store, ['shop']);
    const record = (id: string, results: MemberResult[]) =>
      recordSet(store, {
        setId: id,
        startedAt: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T00:00:00.000Z`,
        source,
        server,
        selection: { include: [], exclude: [] },
        parallel: 1,
        results,
      });
    const older = await record(newBackupId(new Date('2026-03-09T00:00:00Z')), [
      { database: 'shop', manifest: shop },
    ]);
    const newer = await record(newBackupId(new Date('2026-03-10T00:00:00Z')), [
      { database: 'shop', error: { name: 'Error', message: 'gone' } },
    ]);
    expect(older.status).toBe('complete');
    expect(newer.status).toBe('failed');
    expect(newer.globals).toBeUndefined();
    expect((await readSets(store)).sets.map((s) => s.id)).toEqual([newer.id, older.id]);
    expect((await resolveSet(store, 'latest')).id).toBe(older.id);
    const scan = await scanStore(store);
    expect(scan.databases).toEqual(['shop']);
    expect(scan.incomplete).toEqual([]);
  });
});

test('a pinned backup is kept by prune until unpinned', async () => {
  const store = freshStore();
  const [oldest, , newest] = await writeSyntheticBackups(
    store,
    'shop',
    dailyTimes('2026-03-07', '2026-03-09'),
  );
  const keepOne = retentionPolicy({
    keepLast: 1,
    keepDaily: 0,
    keepWeekly: 0,
    keepMonthly: 0,
    keepYearly: 0,
  });
  const now = new Date('2026-03-10T00:00:00Z');
  await pinBackup(store, oldest.id, 'shop', { reason: 'audit' });
  const kept = (await planPrune(store, keepOne, now)).backups.filter((b) => b.action === 'keep');
  expect(kept.map((b) => [b.id, b.pinned])).toEqual([
    [newest.id, false],
    [oldest.id, true],
  ]);
  expect((await unpinBackup(store, oldest.id, 'shop', keepOne, now)).wasPinned).toBe(true);
  const afterUnpin = (await planPrune(store, keepOne, now)).backups.filter((b) => b.action === 'keep');
  expect(afterUnpin.map((b) => b.id)).toEqual([newest.id]);
});
