/**
 * `pgferry status`: the age of each database's newest complete and newest verified backup, and a
 * non-zero exit when one is older than allowed — for cron and monitoring.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { StatusJsonSchema } from '../../core/catalog-json';
import { LocalStore } from '../../core/store';
import { newBackupId, verifyReportKey } from '../../core/store-keys';
import { writeSyntheticBackup } from '../support/backups';
import { runCli } from '../support/cli';

const NOW = '2026-03-10T12:00:00Z';
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-status-'));
const store = new LocalStore(dir);
const status = (...args: string[]) => runCli(['status', '--store', dir, '--now', NOW, ...args]);

beforeAll(async () => {
  // Backups of 10 minutes. shop: one completed 3 hours ago, and one 2 days ago that a
  // verification passed.
  const verified = await writeSyntheticBackup(store, 'shop', new Date('2026-03-08T11:50:00Z'), 600);
  await writeSyntheticBackup(store, 'shop', new Date('2026-03-10T08:50:00Z'), 600);
  await store.putJson(verifyReportKey('shop', verified.id, newBackupId(new Date('2026-03-09T00:00:00Z'))), {
    kind: 'verify',
    status: 'passed',
    finishedAt: '2026-03-09T00:10:00Z',
  });
  // billing: its newest backup completed 3 days ago, never verified.
  await writeSyntheticBackup(store, 'billing', new Date('2026-03-07T11:50:00Z'), 600);
});

test('shows per database the age of the newest backup and of the newest verified one', async () => {
  const result = await status();
  expect(result.code).toBe(0);
  const lines = result.stdout.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^NAME +NEWEST BACKUP +AGE +NEWEST VERIFIED +AGE +STATUS$/);
  expect(lines[1]).toMatch(/^billing +20260307T115000Z-[0-9a-f]{6} +3d 0h +never +- +ok$/);
  expect(lines[2]).toMatch(
    /^shop +20260310T085000Z-[0-9a-f]{6} +3h 0m +20260308T115000Z-[0-9a-f]{6} +2d 0h +ok$/,
  );
});

test('exits 1 naming each database whose newest backup is older than --max-age', async () => {
  const result = await status('--max-age', '36h');
  expect(result.code).toBe(1);
  expect(result.stdout).toMatch(/^billing .* TOO OLD$/m);
  expect(result.stdout).toMatch(/^shop .* ok$/m);
  expect(result.stderr).toBe('pgferry: billing: newest backup is 3d 0h old (max 1d 12h)\n');
});

test('exits 0 when every newest backup is younger than --max-age', async () => {
  expect(await status('--max-age', '4d')).toMatchObject({ code: 0, stderr: '' });
});

test('--max-verified-age fails for a database never verified', async () => {
  const result = await status('--max-verified-age', '1w');
  expect(result.code).toBe(1);
  expect(result.stderr).toBe('pgferry: billing: no verified backup\n');
});

test('--json gives the ages in seconds', async () => {
  const result = await status('--json', '--database', 'shop', '--max-age', '90m');
  expect(result.code).toBe(1);
  expect(JSON.parse(result.stdout)).toMatchObject({
    now: '2026-03-10T12:00:00.000Z',
    databases: [
      {
        database: 'shop',
        newest: { ageSeconds: 3 * 3600 },
        newestVerified: { ageSeconds: 48 * 3600, verifiedAt: '2026-03-09T00:10:00Z' },
        problems: ['newest backup is 3h 0m old (max 1h 30m)'],
      },
    ],
  });
});

test('--json has one shape: a never-verified database has newestVerified null, not a missing key', async () => {
  const result = await status('--json');
  expect(result.code).toBe(0);
  const json = StatusJsonSchema.parse(JSON.parse(result.stdout));
  expect(json.databases.map((d) => [d.database, d.newestVerified])).toEqual([
    ['billing', null],
    ['shop', expect.objectContaining({ verifiedAt: '2026-03-09T00:10:00Z' })],
  ]);
  const empty = await runCli(['status', '--store', dir, '--now', NOW, '--json', '--database', 'inventory']);
  expect(StatusJsonSchema.parse(JSON.parse(empty.stdout)).databases).toEqual([
    {
      database: 'inventory',
      newest: null,
      newestVerified: null,
      unreadable: [],
      datedAfterNow: [],
      problems: [],
    },
  ]);
});

test('a database with no complete backup fails --max-age', async () => {
  const result = await status('--database', 'inventory', '--max-age', '1w');
  expect(result.code).toBe(1);
  expect(result.stderr).toBe('pgferry: inventory: no complete backup\n');
});

test('an empty store fails --max-age', async () => {
  const empty = mkdtempSync(path.join(tmpdir(), 'pgferry-status-empty-'));
  const result = await runCli(['status', '--store', empty, '--max-age', '1d']);
  expect(result).toMatchObject({ code: 1, stderr: `pgferry: no backups in file://${empty}\n` });
});

test.each(['36', '1y', '2 days'])('--max-age %j is refused with the forms to use', async (value) => {
  const result = await status('--max-age', value);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(
    /not a duration: .*\(use minutes, hours, days or weeks, e\.g\. 90m, 36h, 2d, 1w\)\n$/,
  );
  expect(result.stdout).toBe('');
});
