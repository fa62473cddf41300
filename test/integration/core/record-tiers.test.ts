/**
 * The record step's retention tags on S3 (the harness's S3 server): every object of every
 * complete backup carries the tier the policy gives it, `expired` once it keeps it no longer;
 * a new backup re-tags only the backups whose tier changed.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GetObjectTaggingCommand, PutObjectTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import { tagRetentionTiers } from '../../../core/record-tiers';
import { retentionPolicy } from '../../../core/retention';
import { LocalStore } from '../../../core/store';
import { S3Store } from '../../../core/store/s3-store';
import { backupObjectKey, manifestKey } from '../../../core/store-keys';
import { dailyTimes, writeSyntheticBackup, writeSyntheticBackups } from '../../support/backups';
import { testEnv, uniqueName } from '../../support/env';

const env = testEnv();
const s3 = new S3Client(env.s3.clientConfig());
const policy = retentionPolicy({ keepLast: 2, keepDaily: 3, keepWeekly: 2, keepMonthly: 0, keepYearly: 0 });

async function tagsOf(prefix: string, key: string): Promise<Record<string, string>> {
  const out = await s3.send(new GetObjectTaggingCommand({ Bucket: env.s3.bucket, Key: `${prefix}/${key}` }));
  return Object.fromEntries((out.TagSet ?? []).map((t) => [t.Key, t.Value]));
}

describe('retention tags on an S3 store', () => {
  const prefix = uniqueName('tiers');
  const store = new S3Store(env.s3.bucket, prefix, s3);
  const database = 'shop';
  // Mar 1 (a Sunday) to Mar 10, 2026: ISO week 10 is Mar 2–8, week 11 starts Mar 9.
  let ids: string[];

  beforeAll(async () => {
    ids = (await writeSyntheticBackups(store, database, dailyTimes('2026-03-01', '2026-03-10'))).map(
      (m) => m.id,
    );
    await s3.send(
      new PutObjectTaggingCommand({
        Bucket: env.s3.bucket,
        Key: `${prefix}/${backupObjectKey(database, ids[9], 'dump.pgdump')}`,
        Tagging: { TagSet: [{ Key: 'cost-centre', Value: 'dba' }] },
      }),
    );
  });

  test('every object of every backup is tagged with its tier', async () => {
    await tagRetentionTiers(store, database, policy, new Date('2026-03-10T12:00:00Z'));
    const expected = [
      'expired',
      'expired',
      'expired',
      'expired',
      'expired',
      'expired',
      'expired',
      'weekly',
      'daily',
      'weekly',
    ];
    for (const [i, id] of ids.entries()) {
      for (const name of ['dump.pgdump', 'manifest.json']) {
        expect([
          id,
          name,
          (await tagsOf(prefix, backupObjectKey(database, id, name)))['pgferry-tier'],
        ]).toEqual([id, name, expected[i]]);
      }
    }
  });

  test("tagging keeps an object's other tags", async () => {
    expect(await tagsOf(prefix, backupObjectKey(database, ids[9], 'dump.pgdump'))).toEqual({
      'cost-centre': 'dba',
      'pgferry-tier': 'weekly',
    });
  });

  test('a newer backup re-tags exactly the backups whose tier changed', async () => {
    const next = await writeSyntheticBackup(store, database, new Date('2026-03-11T02:00:00Z'));
    const changes = await tagRetentionTiers(store, database, policy, new Date('2026-03-11T12:00:00Z'));
    expect(changes).toEqual([
      { backupId: next.id, to: 'weekly' },
      { backupId: ids[9], from: 'weekly', to: 'daily' },
    ]);
    expect((await tagsOf(prefix, manifestKey(database, ids[9])))['pgferry-tier']).toBe('daily');
  });
});

test('a local store carries no tags: nothing is tagged', async () => {
  const store = new LocalStore(mkdtempSync(path.join(tmpdir(), 'pgferry-tiers-')));
  await writeSyntheticBackup(store, 'shop', new Date('2026-03-01T02:00:00Z'));
  expect(await tagRetentionTiers(store, 'shop', policy, new Date('2026-03-10T00:00:00Z'))).toEqual([]);
});
