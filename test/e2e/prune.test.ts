/**
 * `pgferry prune` over a simulated year and a quarter of backups (one a day at 02:00 since
 * 2025-01-01, two a day in 2026), in both store kinds, as at 2026-03-15 20:00 UTC (`--now`),
 * with the default policy: the expected survivors are worked out by hand below.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { BackupManifest } from '../../core/contracts';
import { type BackupStore, LocalStore } from '../../core/store';
import { S3Store } from '../../core/store/s3-store';
import { dailyTimes, writeSyntheticBackups } from '../support/backups';
import { runCli } from '../support/cli';
import { testEnv, uniqueName } from '../support/env';

const env = testEnv();
const NOW = '2026-03-15T20:00:00Z';

/** [hour the backup was taken, its tier]: the 24 of 516 shop backups the default policy keeps. */
const KEPT_SHOP: [string, string][] = [
  ['2026-03-15T14', 'yearly'], // the newest: last, daily, weekly 2026-W11, monthly, yearly 2026
  ['2026-03-15T02', 'last'],
  ['2026-03-14T14', 'daily'],
  ['2026-03-14T02', 'last'],
  ['2026-03-13T14', 'daily'],
  ['2026-03-13T02', 'last'],
  ['2026-03-12T14', 'daily'], // also the 7th of keepLast
  ['2026-03-11T14', 'daily'],
  ['2026-03-10T14', 'daily'],
  ['2026-03-09T14', 'daily'], // the 7th day
  ['2026-03-08T14', 'weekly'], // a Sunday: the newest of 2026-W10
  ['2026-03-01T14', 'weekly'], // 2026-W09
  ['2026-02-28T14', 'monthly'],
  ['2026-02-22T14', 'weekly'], // 2026-W08, the 4th week
  ['2026-01-31T14', 'monthly'],
  ['2025-12-31T02', 'yearly'], // the newest of 2025, and of December
  ['2025-11-30T02', 'monthly'],
  ['2025-10-31T02', 'monthly'],
  ['2025-09-30T02', 'monthly'],
  ['2025-08-31T02', 'monthly'],
  ['2025-07-31T02', 'monthly'],
  ['2025-06-30T02', 'monthly'],
  ['2025-05-31T02', 'monthly'],
  ['2025-04-30T02', 'monthly'], // the 12th month
];

interface PruneJson {
  dryRun: boolean;
  backups: { database: string; id: string; startedAt: string; action: string; tier?: string }[];
}

const kinds = [
  {
    kind: 'local folder',
    url: () => `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-prune-'))}`,
    open: (url: string): BackupStore => new LocalStore(url.slice('file://'.length)),
    env: {},
  },
  {
    kind: 'S3-compatible',
    url: () => `s3://${env.s3.bucket}/${uniqueName('prune')}`,
    open: (url: string): BackupStore =>
      new S3Store(env.s3.bucket, url.split('/').slice(3).join('/'), new S3Client(env.s3.clientConfig())),
    env: env.s3.env(),
  },
];

describe.each(kinds)(
  'prune of a $kind store holding a year of backups',
  ({ url: makeUrl, open, env: storeEnv }) => {
    const url = makeUrl();
    const store = open(url);
    let shop: BackupManifest[];
    let billing: BackupManifest[];

    const cli = (args: string[]) => runCli([...args, '--store', url], { env: storeEnv });
    const listedIds = async () => {
      const listed = await cli(['list', '--json']);
      return (JSON.parse(listed.stdout) as BackupManifest[]).map((m) => m.id).sort();
    };

    beforeAll(async () => {
      shop = await writeSyntheticBackups(store, 'shop', [
        ...dailyTimes('2025-01-01', '2026-03-15', 2),
        ...dailyTimes('2026-01-01', '2026-03-15', 14),
      ]);
      billing = await writeSyntheticBackups(store, 'billing', dailyTimes('2026-03-13', '2026-03-15', 2));
    });

    test('a dry run says what it would keep and why, and deletes nothing', async () => {
      const result = await cli(['prune', '--now', NOW, '--dry-run']);
      expect(result.code).toBe(0);
      const newest = shop.find((m) => m.startedAt === '2026-03-15T14:00:00.000Z');
      expect(result.stdout).toMatch(
        new RegExp(
          `^keep +shop +${newest?.id} +yearly +last #1, daily 2026-03-15, weekly 2026-W11, monthly 2026-03, yearly 2026$`,
          'm',
        ),
      );
      expect(result.stdout).toMatch(/^would delete +shop +\S+ +- +kept by no rule$/m);
      expect(result.stdout).toMatch(/^dry run: kept 27, would delete 489 of 516 backups/m);
      expect(await listedIds()).toHaveLength(shop.length + billing.length);
    });

    test('keeps exactly the backups the policy keeps, each in its tier, and deletes the rest', async () => {
      const result = await cli(['prune', '--now', NOW, '--json']);
      expect(result.code).toBe(0);
      const plan = JSON.parse(result.stdout) as PruneJson;
      const kept = plan.backups.filter((b) => b.action === 'keep');
      expect(
        kept.filter((b) => b.database === 'shop').map((b) => [b.startedAt.slice(0, 13), b.tier]),
      ).toEqual(KEPT_SHOP);
      // billing has 3 backups, fewer than keepLast: all stay.
      expect(kept.filter((b) => b.database === 'billing').map((b) => b.id)).toEqual(
        billing.map((m) => m.id).reverse(),
      );
      expect(await listedIds()).toEqual(kept.map((b) => b.id).sort());
    });

    test('leaves no object of a deleted backup behind', async () => {
      const folders = new Set<string>();
      for await (const entry of store.list('')) folders.add(entry.key.split('/').slice(0, 2).join('/'));
      expect([...folders].sort()).toEqual((await listedIds()).map((id) => expectFolder(id)).sort());
    });

    test('pruning again deletes nothing', async () => {
      const result = await cli(['prune', '--now', NOW, '--json']);
      expect((JSON.parse(result.stdout) as PruneJson).backups.filter((b) => b.action === 'delete')).toEqual(
        [],
      );
    });

    test('--database and --keep-* flags prune one database with another policy', async () => {
      const result = await cli([
        'prune',
        '--now',
        NOW,
        '--database',
        'billing',
        '--keep-last',
        '1',
        '--keep-daily',
        '0',
        '--keep-weekly',
        '0',
        '--keep-monthly',
        '0',
        '--keep-yearly',
        '0',
      ]);
      expect(result.code).toBe(0);
      const remaining = await cli(['list', '--json', '--database', 'billing']);
      expect((JSON.parse(remaining.stdout) as BackupManifest[]).map((m) => m.id)).toEqual([billing[2].id]);
      const shopListed = await cli(['list', '--json', '--database', 'shop']);
      expect(JSON.parse(shopListed.stdout)).toHaveLength(KEPT_SHOP.length);
    });

    /** The folder (`<database>/<id>`) a listed backup lives in. */
    function expectFolder(id: string): string {
      return `${billing.some((m) => m.id === id) ? 'billing' : 'shop'}/${id}`;
    }
  },
);

test('a policy that keeps nothing is refused before anything is deleted', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-prune-'));
  const store = new LocalStore(dir);
  await writeSyntheticBackups(store, 'shop', dailyTimes('2026-03-01', '2026-03-02'));
  const result = await runCli(['prune', '--store', dir, '--keep-last', '0']);
  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    'pgferry: invalid retention policy: keepLast: keepLast must be at least 1: the newest backup is always kept\n',
  );
  expect(readdirSync(path.join(dir, 'shop'))).toHaveLength(2);
});
