/**
 * The catalog reads the store: complete backups (manifests) newest first, filtered by database
 * and time; incomplete folders, corrupt manifests and the lease are never listed; reports beside
 * a manifest give its verification status; ages per database for `status`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  backupStatus,
  CLOCK_SKEW_ALLOWANCE_SECONDS,
  formatAge,
  latestVerifications,
  listBackups,
  listCatalog,
  parseDuration,
  scanStore,
  unreadableBackups,
} from '../../../core/catalog';
import { acquireLease } from '../../../core/lease';
import { resolveBackup } from '../../../core/resolve-backup';
import { LocalStore } from '../../../core/store';
import {
  backupObjectKey,
  manifestKey,
  newBackupId,
  restoreReportKey,
  verifyReportKey,
} from '../../../core/store-keys';
import { writeSyntheticBackup, writeSyntheticBackups } from '../../support/backups';

const HOUR = 3_600_000;
const freshStore = () => new LocalStore(mkdtempSync(path.join(tmpdir(), 'pgferry-catalog-')));

describe('a store holding 2,000 backups of two databases', () => {
  const store = freshStore();
  const start = Date.parse('2026-01-01T00:00:00Z');
  let ids: { shop: string[]; billing: string[] };

  beforeAll(async () => {
    // Hourly, interleaved: shop on even hours, billing on odd ones.
    const times = (offset: number) =>
      Array.from({ length: 1000 }, (_, i) => new Date(start + (2 * i + offset) * HOUR));
    const shop = await writeSyntheticBackups(store, 'shop', times(0));
    const billing = await writeSyntheticBackups(store, 'billing', times(1));
    ids = { shop: shop.map((m) => m.id), billing: billing.map((m) => m.id) };
  });

  test('lists every one of them, newest first', async () => {
    const listed = await listBackups(store);
    expect(listed).toHaveLength(2000);
    const expected = ids.shop.flatMap((id, i) => [id, ids.billing[i]]).reverse();
    expect(listed.map((m) => m.id)).toEqual(expected);
  });

  test('lists one database', async () => {
    const listed = await listBackups(store, 'billing');
    expect(listed.map((m) => m.id)).toEqual([...ids.billing].reverse());
  });

  test('lists the backups taken between --since and --until, both included', async () => {
    const since = new Date(start + 10 * HOUR);
    const until = new Date(start + 20 * HOUR);
    const listed = await listCatalog(store, { database: 'shop', since, until });
    expect(listed.map((e) => e.manifest.id)).toEqual(ids.shop.slice(5, 11).reverse());
  });
});

describe('what the catalog does not list', () => {
  test('a folder without a manifest, a corrupt manifest and the lease are not backups', async () => {
    const store = freshStore();
    const complete = await writeSyntheticBackup(store, 'shop', new Date('2026-03-01T00:00:00Z'));
    const running = newBackupId(new Date('2026-03-02T00:00:00Z'));
    await store.upload(
      backupObjectKey('shop', running, 'dump.pgdump'),
      Readable.from([Buffer.from('partial')]),
    );
    const corrupt = await writeSyntheticBackup(store, 'shop', new Date('2026-03-03T00:00:00Z'));
    await store.deleteObject(manifestKey('shop', corrupt.id));
    await store.upload(
      manifestKey('shop', corrupt.id),
      Readable.from([Buffer.from('{"schemaVersion": 1, ')]),
    );
    await acquireLease(store, 'shop', newBackupId());

    const scan = await scanStore(store);
    expect(scan.entries.map((e) => e.manifest.id)).toEqual([complete.id]);
    expect(scan.incomplete.map((f) => [f.backupId, f.reason])).toEqual([
      [corrupt.id, 'invalid manifest'],
      [running, 'no manifest'],
    ]);
  });

  test("a manifest copied into another backup's folder is not listed there", async () => {
    const store = freshStore();
    const original = await writeSyntheticBackup(store, 'shop', new Date('2026-03-01T00:00:00Z'));
    await store.putJson(manifestKey('shop', newBackupId()), original);
    await store.putJson(manifestKey('billing', original.id), original);
    expect((await listBackups(store)).map((m) => m.id)).toEqual([original.id]);
  });
});

describe('reports and verification', () => {
  const report = (kind: 'restore' | 'verify', status: 'passed' | 'failed', finishedAt: string) => ({
    kind,
    status,
    finishedAt,
  });

  test("a backup's verification status is its newest verification report's", async () => {
    const store = freshStore();
    const [verified, never] = await Promise.all([
      writeSyntheticBackup(store, 'shop', new Date('2026-03-01T00:00:00Z')),
      writeSyntheticBackup(store, 'shop', new Date('2026-03-02T00:00:00Z')),
    ]);
    const at = (time: string) => newBackupId(new Date(time));
    await store.putJson(
      verifyReportKey('shop', verified.id, at('2026-03-01T05:00:00Z')),
      report('verify', 'failed', '2026-03-01T05:00:00Z'),
    );
    await store.putJson(
      verifyReportKey('shop', verified.id, at('2026-03-01T06:00:00Z')),
      report('verify', 'passed', '2026-03-01T06:00:00Z'),
    );
    await store.putJson(
      restoreReportKey('shop', never.id, at('2026-03-02T06:00:00Z')),
      report('restore', 'passed', '2026-03-02T06:00:00Z'),
    );

    const verifications = await latestVerifications(store, await listCatalog(store));
    expect([...verifications].map(([entry, r]) => [entry.manifest.id, r])).toEqual([
      [verified.id, report('verify', 'passed', '2026-03-01T06:00:00Z')],
    ]);
  });

  test('status gives the age of the newest backup and of the newest verified one, per database', async () => {
    const store = freshStore();
    const now = new Date('2026-03-10T12:00:00Z');
    // Each takes 10 minutes: they complete at 12:00 two days ago and at 06:00 today.
    const older = await writeSyntheticBackup(store, 'shop', new Date('2026-03-08T11:50:00Z'), 600);
    const newest = await writeSyntheticBackup(store, 'shop', new Date('2026-03-10T05:50:00Z'), 600);
    await store.putJson(
      verifyReportKey('shop', older.id, newBackupId(new Date('2026-03-09T00:00:00Z'))),
      report('verify', 'passed', '2026-03-09T00:00:00Z'),
    );
    await acquireLease(store, 'billing', newBackupId()); // a database whose backups never completed

    expect(await backupStatus(store, now)).toEqual([
      { database: 'billing', unreadable: [], datedAfterNow: [] },
      {
        database: 'shop',
        unreadable: [],
        datedAfterNow: [],
        newest: {
          id: newest.id,
          startedAt: newest.startedAt,
          finishedAt: newest.finishedAt,
          ageSeconds: 6 * 3600,
        },
        newestVerified: {
          id: older.id,
          startedAt: older.startedAt,
          finishedAt: older.finishedAt,
          ageSeconds: 48 * 3600,
          verifiedAt: '2026-03-09T00:00:00Z',
        },
      },
    ]);
  });
});

describe('durations', () => {
  test.each([
    ['90m', 90 * 60],
    ['36h', 36 * 3600],
    ['2d', 2 * 86400],
    ['1w', 7 * 86400],
  ])('%s is %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  test.each(['36', '1y', '0h', 'h', '1.5h', '-2d', '2 days'])(
    '%j is refused with the forms to use',
    (text) => {
      expect(() => parseDuration(text)).toThrow(
        /not a duration: .* \(use minutes, hours, days or weeks, e\.g\. 90m, 36h, 2d, 1w\)/,
      );
    },
  );

  test.each([
    [59, '0m'],
    [90 * 60, '1h 30m'],
    [36 * 3600, '1d 12h'],
  ])('an age of %i seconds reads %s', (seconds, text) => {
    expect(formatAge(seconds)).toBe(text);
  });
});

describe('unreadable backups and clocks', () => {
  const now = new Date('2026-03-10T12:00:00Z');
  const writeManifest = async (store: LocalStore, at: string, manifest: unknown) => {
    const id = newBackupId(new Date(at));
    await store.upload(backupObjectKey('shop', id, 'dump.pgdump'), Readable.from([Buffer.from('d')]));
    await store.putJson(manifestKey('shop', id), manifest);
    return id;
  };

  test('each unreadable manifest is returned with why: wrong shape, newer schema, another backup', async () => {
    const store = freshStore();
    const good = await writeSyntheticBackup(store, 'shop', new Date('2026-03-01T00:00:00Z'));
    const shapeless = await writeManifest(store, '2026-03-02T00:00:00Z', { schemaVersion: 1 });
    const newer = await writeManifest(store, '2026-03-03T00:00:00Z', { ...good, schemaVersion: 2 });
    const copied = await writeManifest(store, '2026-03-04T00:00:00Z', good);
    const scan = await scanStore(store);
    expect(scan.entries.map((e) => e.manifest.id)).toEqual([good.id]);
    expect(unreadableBackups(scan).map((f) => [f.backupId, f.folder, f.problem])).toEqual([
      [copied, `shop/${copied}/`, `its manifest describes another backup (${good.id} of "shop")`],
      [
        newer,
        `shop/${newer}/`,
        'its manifest has schema version 2, written by a newer pgferry than this one (which reads 1)',
      ],
      [
        shapeless,
        `shop/${shapeless}/`,
        expect.stringMatching(/^its manifest is not a pgferry manifest \(id: /),
      ],
    ]);
  });

  test('latest is the newest readable backup when every unreadable one is older', async () => {
    const store = freshStore();
    await writeManifest(store, '2026-03-01T00:00:00Z', { schemaVersion: 1 });
    const good = await writeSyntheticBackup(store, 'shop', new Date('2026-03-02T00:00:00Z'));
    expect((await resolveBackup(store, 'latest', 'shop', now)).id).toBe(good.id);
  });

  test('a backup a few seconds after now (two clocks) counts; one beyond the allowance does not', async () => {
    const store = freshStore();
    const justAhead = await writeSyntheticBackup(store, 'shop', new Date(now.getTime() + 60_000), 1);
    const [status] = await backupStatus(store, now);
    expect(status).toMatchObject({ newest: { id: justAhead.id, ageSeconds: 0 }, datedAfterNow: [] });
    const later = new Date(now.getTime() - (CLOCK_SKEW_ALLOWANCE_SECONDS + 120) * 1000);
    expect((await backupStatus(store, later))[0]).toMatchObject({ datedAfterNow: [{ id: justAhead.id }] });
    expect((await backupStatus(store, later))[0].newest).toBeUndefined();
  });
});

test('status: a safety or migration backup is never a database newest backup; a name of only those is left out', async () => {
  const store = new LocalStore(mkdtempSync(path.join(tmpdir(), 'pgferry-status-origin-')));
  const routine = await writeSyntheticBackup(store, 'shop', new Date('2026-03-08T02:00:00Z'));
  const safety = {
    ...(await writeSyntheticBackup(store, 'shop', new Date('2026-03-09T02:00:00Z'))),
    origin: 'safety' as const,
  };
  await store.putJson(manifestKey('shop', safety.id), safety);
  const migration = {
    ...(await writeSyntheticBackup(store, 'shop@old', new Date('2026-03-09T02:00:00Z'))),
    origin: 'migration' as const,
  };
  await store.putJson(manifestKey('shop@old', migration.id), migration);
  const statuses = await backupStatus(store, new Date('2026-03-10T00:00:00Z'));
  expect(statuses.map((s) => [s.database, s.newest?.id])).toEqual([['shop', routine.id]]);
});
