/**
 * `pgferry list` and `pgferry show`: the catalog read from the store, with time filters, retention
 * tiers, sizes, durations and verification status, and one backup with its reports.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { ListedCatalogSchema } from '../../core/catalog-json';
import type { BackupManifest } from '../../core/contracts';
import { LocalStore } from '../../core/store';
import { newBackupId, restoreReportKey, verifyReportKey } from '../../core/store-keys';
import { writeSyntheticBackup } from '../support/backups';
import { runCli } from '../support/cli';

const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-catalog-e2e-'));
const store = new LocalStore(dir);
let backups: BackupManifest[];
let billing: BackupManifest;

const report = (kind: 'restore' | 'verify', status: 'passed' | 'failed', finishedAt: string) => ({
  kind,
  status,
  finishedAt,
});

beforeAll(async () => {
  backups = [];
  for (const day of ['01', '02', '03', '04']) {
    backups.push(await writeSyntheticBackup(store, 'shop', new Date(`2026-03-${day}T02:00:00Z`)));
  }
  billing = await writeSyntheticBackup(store, 'billing', new Date('2026-03-04T03:00:00Z'));
  const put = (backup: BackupManifest, kind: 'restore' | 'verify', status: 'passed' | 'failed', at: string) =>
    store.putJson(
      (kind === 'verify' ? verifyReportKey : restoreReportKey)('shop', backup.id, newBackupId(new Date(at))),
      report(kind, status, at),
    );
  await put(backups[1], 'verify', 'passed', '2026-03-02T05:00:00Z');
  await put(backups[2], 'verify', 'passed', '2026-03-03T05:00:00Z');
  await put(backups[2], 'verify', 'failed', '2026-03-03T06:00:00Z');
  await put(backups[2], 'restore', 'passed', '2026-03-03T07:00:00Z');
});

describe('pgferry list', () => {
  test('--since and --until keep the backups taken between them, newest first', async () => {
    const result = await runCli([
      'list',
      '--store',
      dir,
      '--since',
      '2026-03-02',
      '--until',
      '2026-03-03T02:00:00Z',
      '--json',
    ]);
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as BackupManifest[]).map((m) => m.id)).toEqual([
      backups[2].id,
      backups[1].id,
    ]);
  });

  test('shows the tier, size, duration and latest verification of each backup', async () => {
    const result = await runCli(['list', '--store', dir, '--database', 'shop']);
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^ID +NAME +ORIGIN +STARTED +TIER +SIZE +DURATION +VERIFIED +SERVER +COMPRESSION$/,
    );
    const row = (b: BackupManifest, tier: string, verified: string) =>
      new RegExp(
        `^${b.id} +shop +manual +${b.startedAt.replace('.000Z', 'Z')} +${tier} +64 B +1\\.5s +${verified} +PostgreSQL 15\\.18 +none$`,
      );
    expect(lines.slice(1)).toHaveLength(4);
    expect(lines[1]).toMatch(row(backups[3], 'yearly', 'never'));
    expect(lines[2]).toMatch(row(backups[2], 'daily', 'failed 2026-03-03'));
    expect(lines[3]).toMatch(row(backups[1], 'daily', 'passed 2026-03-02'));
    expect(lines[4]).toMatch(row(backups[0], 'weekly', 'never')); // a Sunday: the newest of 2026-W09
  });

  test('--explain ends the table with what each tier shown means, and why the newest is yearly', async () => {
    const result = await runCli(['list', '--store', dir, '--database', 'shop', '--explain']);
    expect(result.code).toBe(0);
    const [table, legend] = result.stdout.split('\n\n');
    expect(table.split('\n')).toHaveLength(5);
    expect(legend).toBe(
      [
        'TIER: the longest-lived retention rule that keeps the backup',
        '  yearly  the newest backup of its year, one of the last 2 years with a backup',
        '  weekly  the newest backup of its ISO week, one of the last 4 ISO weeks with a backup',
        '  daily   the newest backup of its UTC day, one of the last 7 UTC days with a backup',
        'A new backup is the newest of its year, month, week and day at once, so it takes the longest tier:',
        "the first backup ever is yearly. The policy: PGFERRY_RETENTION, or prune's --keep-* flags.",
        '',
      ].join('\n'),
    );
  });

  test('--json is each manifest as stored, with what the table shows under catalog (nulls, not missing keys)', async () => {
    const result = await runCli(['list', '--store', dir, '--database', 'shop', '--json']);
    expect(result.code).toBe(0);
    const listed = z
      .array(z.looseObject({ id: z.string(), catalog: ListedCatalogSchema }))
      .parse(JSON.parse(result.stdout));
    for (const [i, entry] of listed.entries()) {
      const { catalog, ...manifest } = entry;
      expect(manifest).toEqual(backups[3 - i]);
      expect(Object.keys(catalog)).toEqual(['name', 'origin', 'storedBytes', 'retention', 'verification']);
    }
    expect(listed.map((e) => [e.catalog.retention?.tier, e.catalog.verification])).toEqual([
      ['yearly', null],
      ['daily', { status: 'failed', finishedAt: '2026-03-03T06:00:00Z' }],
      ['daily', { status: 'passed', finishedAt: '2026-03-02T05:00:00Z' }],
      ['weekly', null],
    ]);
    // Written before origins were recorded: read as manual.
    expect(listed[0].catalog).toMatchObject({ name: 'shop', origin: 'manual', storedBytes: 64 });
  });
});

describe('pgferry show', () => {
  test('prints one manifest with its retention tier and its reports, newest first', async () => {
    const result = await runCli(['show', '--store', dir, '--backup', backups[2].id, '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      manifest: backups[2],
      retention: { keep: true, tier: 'daily', reasons: expect.any(Array), afterNow: false, pinned: false },
      reports: {
        restore: [report('restore', 'passed', '2026-03-03T07:00:00Z')],
        verify: [
          report('verify', 'failed', '2026-03-03T06:00:00Z'),
          report('verify', 'passed', '2026-03-03T05:00:00Z'),
        ],
      },
    });
  });

  test('latest is the newest complete backup of --database', async () => {
    const result = await runCli(['show', '--store', dir, '--backup', 'latest', '--database', 'shop']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^backup +${backups[3].id}$`, 'm'));
    expect(result.stdout).toMatch(
      /^tier +yearly \(last #1, daily 2026-03-04, weekly 2026-W10, monthly 2026-03, yearly 2026\)$/m,
    );
    expect(result.stdout).toMatch(/^verified +never$/m);
    expect(result.stdout).toMatch(/^no restore or verification reports$/m);
  });

  test('shows a backup of another database by its id alone', async () => {
    const result = await runCli(['show', '--store', dir, '--backup', billing.id, '--json']);
    expect(JSON.parse(result.stdout).manifest).toEqual(billing);
  });

  test('latest needs --name when the store holds several databases', async () => {
    const result = await runCli(['show', '--store', dir, '--backup', 'latest']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^pgferry: the store holds the backups of several databases: name one with --name/,
    );
  });

  test('an unknown backup id is reported as not found', async () => {
    const id = newBackupId();
    const result = await runCli(['show', '--store', dir, '--backup', id]);
    expect(result).toMatchObject({ code: 1, stderr: `pgferry: backup ${id} not found in file://${dir}\n` });
  });
});
