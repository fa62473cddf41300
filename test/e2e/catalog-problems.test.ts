/**
 * No quiet failures in the catalog: a backup whose manifest exists but cannot be used (not JSON,
 * or JSON of the wrong shape) is named by `list` on stderr with its folder, fails `status`, and
 * makes `latest` (show, restore, verify) refuse rather than fall back to an older backup — in a
 * local store and on S3. A backup dated after now (a wrong clock) is reported and never counts as
 * fresh. A store that cannot be read — a bucket removed during a listing, access denied, a store
 * folder that does not exist — fails the command with one line instead of shortening the list.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import type { BackupManifest } from '../../core/contracts';
import { type BackupStore, LocalStore } from '../../core/store';
import { S3Store } from '../../core/store/s3-store';
import { backupObjectKey, manifestKey, newBackupId } from '../../core/store-keys';
import { syntheticManifest, writeSyntheticBackup } from '../support/backups';
import { runCli, sourceUrl } from '../support/cli';
import { testEnv, uniqueName } from '../support/env';
import { type S3FaultProxy, startS3FaultProxy } from '../support/s3-fault-proxy';

const env = testEnv();
const pg = env.server(15);
const DAY = 86_400_000;

/** A backup folder with a dump and `manifest` as its manifest's bytes. */
async function writeBrokenBackup(store: BackupStore, database: string, startedAt: Date, manifest: string) {
  const id = newBackupId(startedAt);
  await store.upload(backupObjectKey(database, id, 'dump.pgdump'), Readable.from([Buffer.from('dump')]));
  await store.upload(manifestKey(database, id), Readable.from([Buffer.from(manifest)]));
  return id;
}

const stores = [
  {
    kind: 'local',
    make() {
      const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-catalog-problems-'));
      return { url: `file://${dir}`, store: new LocalStore(dir) as BackupStore, env: {} };
    },
  },
  {
    kind: 'S3',
    make() {
      const prefix = uniqueName('catalog_problems');
      return {
        url: `s3://${env.s3.bucket}/${prefix}`,
        store: new S3Store(env.s3.bucket, prefix, new S3Client(env.s3.clientConfig())) as BackupStore,
        env: env.s3.env(),
      };
    },
  },
];

describe.each(stores)('unreadable backups in a $kind store', ({ make }) => {
  const { url, store, env: cliEnv } = make();
  const cli = (...args: string[]) => runCli(args, { env: cliEnv });
  let good: BackupManifest;
  let notJson: string;
  let wrongShape: string;

  beforeAll(async () => {
    good = await writeSyntheticBackup(store, 'shop', new Date(Date.now() - 3 * DAY - 1_800_000));
    // Valid JSON, the wrong shape: a manifest without its objects.
    const { objects: _, ...shapeless } = syntheticManifest('shop', new Date(), Buffer.from('x'));
    wrongShape = await writeBrokenBackup(
      store,
      'shop',
      new Date(Date.now() - 2 * DAY),
      JSON.stringify(shapeless),
    );
    notJson = await writeBrokenBackup(store, 'shop', new Date(Date.now() - DAY), '{"schemaVersion": 1, ');
  });

  test('list shows the readable backup and names each unreadable one on stderr, with its folder', async () => {
    const result = await cli('list', '--store', url);
    expect(result.code).toBe(0);
    expect(result.stdout.trimEnd().split('\n').slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^${good.id} +shop `)),
    ]);
    expect(result.stderr.trimEnd().split('\n')).toEqual([
      `pgferry: unreadable backup ${notJson} of shop in ${url}/shop/${notJson}/: its manifest is not valid JSON`,
      `pgferry: unreadable backup ${wrongShape} of shop in ${url}/shop/${wrongShape}/: its manifest is not a pgferry manifest (objects: Invalid input: expected array, received undefined)`,
    ]);
    // --json stays JSON on stdout; the warnings stay on stderr.
    const json = await cli('list', '--store', url, '--json');
    expect((JSON.parse(json.stdout) as BackupManifest[]).map((m) => m.id)).toEqual([good.id]);
    expect(json.stderr).toContain(`unreadable backup ${notJson}`);
  });

  test('status exits 1 naming each unreadable backup, and counts them in --json', async () => {
    const result = await cli('status', '--store', url);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(new RegExp(`^shop +${good.id} +3d 0h +never +- +UNREADABLE BACKUP$`, 'm'));
    expect(result.stderr).toBe(
      `pgferry: shop: backup ${notJson} is unreadable: its manifest is not valid JSON (${url}/shop/${notJson}/), ` +
        `backup ${wrongShape} is unreadable: its manifest is not a pgferry manifest (objects: Invalid input: expected array, received undefined) (${url}/shop/${wrongShape}/)\n`,
    );
    const json = await cli('status', '--store', url, '--json');
    expect(json.code).toBe(1);
    const [shop] = JSON.parse(json.stdout).databases;
    expect(shop.newest.id).toBe(good.id);
    expect(shop.unreadable).toEqual([
      expect.objectContaining({ id: notJson, folder: `${url}/shop/${notJson}/` }),
      expect.objectContaining({ id: wrongShape, folder: `${url}/shop/${wrongShape}/` }),
    ]);
    expect(shop.problems).toHaveLength(2);
  });

  const refusal = () =>
    `pgferry: latest refused: the newest backup of "shop", ${notJson}, is unreadable: its manifest is not valid JSON ` +
    `(${url}/shop/${notJson}/); name a backup with --backup (the newest usable one is ${good.id}), or repair or remove that folder\n`;

  test('show --backup latest refuses, naming the unreadable backup and the newest usable one', async () => {
    const result = await cli('show', '--store', url, '--backup', 'latest', '--database', 'shop');
    expect(result).toMatchObject({ code: 1, stdout: '', stderr: refusal() });
    // Named by id, with or without --database, the readable backup is shown, and the unreadable
    // one says why it is not.
    for (const named of [['--database', 'shop'], []]) {
      const show = (id: string) => cli('show', '--store', url, '--backup', id, ...named);
      expect(await show(good.id)).toMatchObject({ code: 0, stderr: '' });
      expect(await show(wrongShape)).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(
          new RegExp(`^pgferry: backup ${wrongShape} is unreadable: its manifest is not a pgferry manifest`),
        ),
      });
    }
  });

  test('restore --backup <id> without --database finds the backup and refuses the unreadable one', async () => {
    const target = uniqueName('never_created');
    const result = await cli(
      'restore',
      '--store',
      url,
      '--backup',
      wrongShape,
      '--target',
      sourceUrl(pg, target),
    );
    expect(result).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        new RegExp(`^pgferry: backup ${wrongShape} is unreadable: its manifest is not a pgferry manifest`),
      ),
    });
  });

  test('restore --backup latest refuses before touching the target', async () => {
    const target = uniqueName('never_created');
    const result = await cli(
      'restore',
      '--store',
      url,
      '--backup',
      'latest',
      '--database',
      'shop',
      '--target',
      sourceUrl(pg, target),
    );
    expect(result).toMatchObject({ code: 1, stderr: refusal() });
  });

  test('verify --backup latest refuses', async () => {
    const result = await cli('verify', '--store', url, '--backup', 'latest', '--database', 'shop');
    expect(result).toMatchObject({ code: 1, stderr: refusal() });
  });
});

describe('a backup dated after now (a wrong clock)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-future-'));
  const store = new LocalStore(dir);
  // `status` measures at a fixed now (ages do not depend on how long the tests take); `list` and
  // `latest` use the real one, a few seconds later.
  const now = new Date();
  const status = (...args: string[]) =>
    runCli(['status', '--store', dir, '--now', now.toISOString(), ...args]);
  let stale: BackupManifest;
  let future: BackupManifest;

  beforeAll(async () => {
    // The schedule stopped 90 days ago; a host with its clock a year ahead took one more.
    stale = await writeSyntheticBackup(store, 'shop', new Date(now.getTime() - 90 * DAY - 1_800_000));
    future = await writeSyntheticBackup(store, 'shop', new Date(now.getTime() + 365 * DAY));
  });

  test('status does not count it: the stale newest backup still fails --max-age, and it is reported', async () => {
    const result = await status('--max-age', '2d', '--json');
    expect(result.code).toBe(1);
    const [shop] = JSON.parse(result.stdout).databases;
    expect(shop.newest.id).toBe(stale.id);
    expect(shop.datedAfterNow).toEqual([
      { id: future.id, startedAt: future.startedAt, finishedAt: future.finishedAt },
    ]);
    expect(shop.problems).toEqual([
      expect.stringMatching(
        new RegExp(
          `^backup ${future.id} is dated ${future.startedAt}, after now \\(.*\\): a clock was wrong; it is not counted$`,
        ),
      ),
      'newest backup is 90d 0h old (max 2d 0h)',
    ]);
    expect(result.stderr).toMatch(
      /^pgferry: shop: backup .* after now .*, newest backup is 90d 0h old \(max 2d 0h\)\n$/,
    );
  });

  test('status fails on it even without --max-age', async () => {
    const result = await status();
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(new RegExp(`^shop +${stale.id} +90d 0h +never +- +DATED AFTER NOW$`, 'm'));
  });

  test('list reports it on stderr', async () => {
    const result = await runCli(['list', '--store', dir]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      new RegExp(
        `^pgferry: backup ${future.id} of shop is dated ${future.startedAt}, after now \\(.*\\): a clock was wrong; status does not count it\\n$`,
      ),
    );
    expect(result.stdout).toMatch(new RegExp(`^${future.id} +shop +manual +\\S+ +after now `, 'm'));
  });

  test('latest refuses: which backup is the newest is unknown', async () => {
    const result = await runCli(['show', '--store', dir, '--backup', 'latest', '--database', 'shop']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^pgferry: latest refused: backup ${future.id} of "shop" is dated ${future.startedAt}, after now .*; name a backup with --backup \\(the newest usable one is ${stale.id}\\)\\n$`,
      ),
    );
  });
});

describe('a store that cannot be read fails the command', () => {
  let proxy: S3FaultProxy;
  const prefix = uniqueName('store_errors');
  const url = `s3://${env.s3.bucket}/${prefix}`;
  const direct = new S3Store(env.s3.bucket, prefix, new S3Client(env.s3.clientConfig()));
  const throughProxy = () => ({
    ...env.s3.env(),
    AWS_ENDPOINT_URL_S3: proxy.endpoint,
    AWS_MAX_ATTEMPTS: '2',
  });

  beforeAll(async () => {
    proxy = await startS3FaultProxy(env.s3.endpoint);
    for (const days of [3, 2, 1])
      await writeSyntheticBackup(direct, 'shop', new Date(Date.now() - days * DAY));
  });
  afterAll(() => proxy.close());
  afterEach(() => proxy.heal());

  test('the bucket removed after the listing, before the manifests are read', async () => {
    proxy.inject({
      match: (r) => r.operation === 'GetObject',
      action: { status: 404, code: 'NoSuchBucket' },
      times: 1,
    });
    for (const command of ['list', 'status']) {
      const result = await runCli([command, '--store', url], { env: throughProxy() });
      expect(result).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toMatch(
        new RegExp(
          `^pgferry: ${url}: could not read shop/\\S+/manifest\\.json: bucket ${env.s3.bucket} does not exist\\n$`,
        ),
      );
      proxy.heal();
      proxy.inject({
        match: (r) => r.operation === 'GetObject',
        action: { status: 404, code: 'NoSuchBucket' },
      });
    }
  });

  test('the bucket removed before the listing', async () => {
    proxy.inject({
      match: (r) => r.operation === 'ListObjects',
      action: { status: 404, code: 'NoSuchBucket' },
    });
    const result = await runCli(['list', '--store', url], { env: throughProxy() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`^pgferry: ${url}: could not list : bucket ${env.s3.bucket} does not exist\\n$`),
    );
  });

  test('access lost while reading the manifests', async () => {
    proxy.inject({
      match: (r) => r.operation === 'GetObject',
      action: { status: 403, code: 'AccessDenied' },
    });
    const result = await runCli(['list', '--store', url], { env: throughProxy() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^pgferry: s3:\/\/.*: could not read shop\/\S+\/manifest\.json: access denied \(AccessDenied\)\n$/,
    );
  });

  test('a local store folder that does not exist', async () => {
    const missing = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-missing-')), 'not-mounted');
    for (const args of [
      ['list', '--store', missing],
      ['status', '--store', missing],
      ['show', '--store', missing, '--backup', 'latest'],
    ]) {
      expect(await runCli(args)).toMatchObject({
        code: 1,
        stdout: '',
        stderr: `pgferry: store file://${missing} does not exist (no folder ${missing}): check the path, or that its file system is mounted\n`,
      });
    }
  });
});
