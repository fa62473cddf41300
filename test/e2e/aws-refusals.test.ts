/**
 * On AWS, what an execution input may not do, refused by the code that runs there: the Lambda
 * functions as `cdk deploy` bundles them (the deployment's bindings compiled in), invoked with an
 * event in a process of their own, and the pg-tools runner with the bindings of the task
 * definition's environment. Two real TLS servers (A, configured; B, not), a stand-in for Secrets
 * Manager that records what is read, and a local store. Every refusal is shown to come before a
 * secret is read, before anything connects, and before anything is written.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { Client } from 'pg';
import {
  type BackupManifest,
  type RestorePlan,
  RestoreRequestSchema,
  SCHEMA_VERSION,
} from '../../core/contracts';
import { encodeBindings } from '../../core/deployment';
import { storeJob } from '../../core/jobs';
import { openStore } from '../../core/store';
import { jobKey, manifestKey, newBackupId } from '../../core/store-keys';
import type { PgferryConfigInput } from '../../lib/config';
import { cliEnv, REPO, runCli } from '../support/cli';
import { type FakeSecretsManager, startFakeSecretsManager } from '../support/fake-secrets-manager';
import { type BundledStack, invokeBundle, synthesizeBundled } from '../support/lambda-bundles';
import { startTlsPostgres, type TlsPostgres } from '../support/tls-postgres';
import { existingVpc } from '../unit/lib/fixtures';

const password = `aws refusals ${process.pid}`;
const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf';
let a: TlsPostgres; // configured: database shop (source) and drill (target)
let b: TlsPostgres; // configured nowhere, same password: a server that would accept the secret
let sm: FakeSecretsManager;
let bundled: BundledStack;
let caBundle: string;
let store: string; // with one backup of shop
let backup: BackupManifest;
let bigBackup: BackupManifest; // its manifest says 500 GiB of dump, without large objects
let bigWithLargeObjects: BackupManifest; // 500 GiB, and its archive holds large objects
let eucTw: BackupManifest; // its manifest says its database is in EUC_TW

async function socketQuery(server: TlsPostgres, sql: string, db = 'postgres'): Promise<unknown[]> {
  const c = new Client({
    host: server.server.socketDir,
    port: server.server.port,
    user: 'postgres',
    database: db,
  });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

function login(server: TlsPostgres, database: string) {
  return {
    host: '127.0.0.1',
    port: server.server.port,
    database,
    user: 'postgres',
    sslmode: 'verify-full' as const,
    passwordSecretArn: SECRET,
  };
}

beforeAll(async () => {
  [a, b] = await Promise.all([startTlsPostgres(password), startTlsPostgres(password)]);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-aws-refusals-'));
  caBundle = path.join(dir, 'ca-bundle.pem');
  writeFileSync(caBundle, readFileSync(a.caFile, 'utf8') + readFileSync(b.caFile, 'utf8'));
  for (const server of [a, b]) {
    await socketQuery(server, 'CREATE DATABASE shop');
    await socketQuery(server, 'CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g', 'shop');
  }
  sm = await startFakeSecretsManager({ [SECRET]: JSON.stringify({ username: 'postgres', password }) });

  const network = { cidr: '10.0.0.0/16', allowIngress: false };
  const config: PgferryConfigInput = {
    vpc: existingVpc(),
    databases: [
      {
        id: 'shop',
        connection: login(a, 'shop'),
        network,
        backupSchedules: [{ cron: '0 3 * * ? *' }],
      },
    ],
    targets: [{ id: 'drill', connection: login(a, 'drill'), network }],
  };
  bundled = synthesizeBundled(config);

  // Backups to restore, made by the local CLI (no bindings: nothing is checked).
  store = path.join(dir, 'store');
  const source = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${a.server.port}/shop?sslmode=verify-full&sslrootcert=${encodeURIComponent(a.caFile)}`;
  const made: string[] = [];
  for (let i = 0; i < 4; i++) {
    const result = await runCli(['backup', '--source', source, '--store', store]);
    expect(result.stderr).toBe('');
    made.push(result.stdout.trim());
  }
  const local = openStore(`file://${store}`);
  backup = (await local.getJson(manifestKey('shop', made[0]))) as BackupManifest;
  bigBackup = { ...((await local.getJson(manifestKey('shop', made[1]))) as BackupManifest) };
  bigBackup.uncompressedBytes = 500 * 1024 ** 3;
  await local.putJson(manifestKey('shop', bigBackup.id), bigBackup);
  const other = (await local.getJson(manifestKey('shop', made[2]))) as BackupManifest;
  bigWithLargeObjects = {
    ...other,
    uncompressedBytes: 500 * 1024 ** 3,
    objects: other.objects.map((o) => (o.kind === 'dump' ? { ...o, largeObjects: true } : o)),
  };
  await local.putJson(manifestKey('shop', bigWithLargeObjects.id), bigWithLargeObjects);
  const fourth = (await local.getJson(manifestKey('shop', made[3]))) as BackupManifest;
  eucTw = { ...fourth, requires: { extensions: [], roles: [], ...fourth.requires, encoding: 'EUC_TW' } };
  await local.putJson(manifestKey('shop', eucTw.id), eucTw);
}, 300_000);
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), sm?.stop()]);
});

/** Every file under `dir`, with its size: what a refusal must leave as it was. */
function filesOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(`${path.relative(dir, p)} ${statSync(p).size}`);
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * The environment of a bundle, as Lambda gives it, plus the stand-ins; and bindings in the
 * environment that would allow everything — which a function must ignore, its own being compiled in.
 */
function lambdaEnv(): Record<string, string> {
  const permissive = encodeBindings({
    version: 1,
    bindings: [b, a].map((server) => ({
      id: 'anything',
      source: true,
      target: true,
      ...login(server, 'shop'),
      anyDatabase: true,
      cutoverEcsServices: [],
    })),
  });
  return {
    ...sm.env(),
    NODE_EXTRA_CA_CERTS: caBundle,
    PGFERRY_BINDINGS: permissive,
    // What the stack sets on the backup preflight: where the dumps' tasks may run.
    PGFERRY_TASK_SUBNETS: JSON.stringify({ 'eu-west-1a': ['subnet-0a'], 'eu-west-1b': ['subnet-0b'] }),
  };
}

interface Witness {
  files: string[];
  secretsRead: number;
  connections: { a: number; b: number };
}

function witness(storeDir: string): Witness {
  return {
    files: filesOf(storeDir),
    secretsRead: sm.requested.length,
    connections: { a: a.connectionLog().length, b: b.connectionLog().length },
  };
}

/** Nothing was read, connected to or written since `before`. */
function expectUntouched(storeDir: string, before: Witness): void {
  expect(witness(storeDir)).toEqual(before);
}

function freshStore(): string {
  return mkdtempSync(path.join(tmpdir(), 'pgferry-aws-store-'));
}

test('a bound login passes: the bundled backup preflight reads its secret, connects over verify-full and plans', async () => {
  const dir = freshStore();
  const result = await invokeBundle(
    bundled.bundleOf('Preflight'),
    { request: { source: login(a, 'shop'), store: `file://${dir}` }, executionId: 'arn:exec:ok' },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: true,
    // No zone is bound to it: the dump may run in any of the stack's subnets.
    result: expect.objectContaining({ database: 'shop', placement: { subnets: ['subnet-0a', 'subnet-0b'] } }),
  });
  expect(sm.requested).toContain(SECRET);
  expect(filesOf(dir).length).toBeGreaterThan(0); // its job and its lease
});

test('a secret paired with another host is refused by the bundled backup preflight: nothing read, connected or written', async () => {
  const dir = freshStore();
  const before = witness(dir);
  const result = await invokeBundle(
    bundled.bundleOf('Preflight'),
    { request: { source: login(b, 'shop'), store: `file://${dir}` }, executionId: 'arn:exec:other-host' },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.NotConfigured',
    errorMessage: `secret ${SECRET} is configured for "shop" (postgres@127.0.0.1:${a.server.port}/shop), "drill" (postgres@127.0.0.1:${a.server.port}/drill), not for postgres@127.0.0.1:${b.server.port}/shop: on AWS a login is used only with the server, port, database and user it is configured for`,
  });
  expectUntouched(dir, before);
});

test('a weak sslmode with a bound secret is refused on AWS: nothing read, connected or written', async () => {
  const dir = freshStore();
  const before = witness(dir);
  const result = await invokeBundle(
    bundled.bundleOf('Preflight'),
    {
      request: { source: { ...login(a, 'shop'), sslmode: 'require' }, store: `file://${dir}` },
      executionId: 'arn:exec:weak',
    },
    lambdaEnv(),
  );
  expect(result).toMatchObject({ ok: false, errorType: 'Pgferry.NotConfigured' });
  expect((result as { errorMessage: string }).errorMessage).toMatch(
    /^sslmode require refused for postgres@127\.0\.0\.1:\d+\/shop: on AWS a password or token is sent only over TLS that proves the server/,
  );
  expectUntouched(dir, before);
});

test("a request's own sslrootcert is refused on AWS: the server is checked against the deployment's CAs only", async () => {
  const dir = freshStore();
  const before = witness(dir);
  const result = await invokeBundle(
    bundled.bundleOf('Preflight'),
    {
      request: { source: { ...login(a, 'shop'), sslrootcert: b.caFile }, store: `file://${dir}` },
      executionId: 'arn:exec:own-ca',
    },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.NotConfigured',
    errorMessage: `sslrootcert refused for postgres@127.0.0.1:${a.server.port}/shop: on AWS the server is checked against the RDS certificate authorities the deployment trusts, not a file the request names`,
  });
  expectUntouched(dir, before);
});

test('a migration from a database configured only as a target is refused: nothing read, connected or written', async () => {
  const dir = freshStore();
  const before = witness(dir);
  const result = await invokeBundle(
    bundled.bundleOf('MigratePreflight'),
    { source: login(a, 'drill'), target: login(a, 'drill'), store: `file://${dir}` },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.NotConfigured',
    errorMessage: `postgres@127.0.0.1:${a.server.port}/drill is not configured to be migrated from (a configured database): configure it in databases[] and deploy`,
  });
  expectUntouched(dir, before);
});

test('a restore into a database not configured as a target is refused: no job, no connection, no secret read', async () => {
  const before = witness(store);
  const result = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    { store: `file://${store}`, backup: backup.id, name: 'shop', target: login(a, 'elsewhere') },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.NotConfigured',
    errorMessage: `postgres@127.0.0.1:${a.server.port}/elsewhere is not configured to be restored into (a target): configure it in targets[] (or set restoreTarget: true on the database) and deploy`,
  });
  expectUntouched(store, before);
  expect(await socketQuery(a, "SELECT 1 FROM pg_database WHERE datname = 'elsewhere'")).toEqual([]);
});

test('a configured database is not a restore target unless it says so: restoring over shop is refused', async () => {
  const before = witness(store);
  const result = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    {
      store: `file://${store}`,
      backup: backup.id,
      database: 'shop',
      target: login(a, 'shop'),
      mode: 'clean',
    },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.NotConfigured',
    errorMessage: `postgres@127.0.0.1:${a.server.port}/shop is not configured to be restored into (a target): configure it in targets[] (or set restoreTarget: true on the database) and deploy`,
  });
  expectUntouched(store, before);
});

test('a migration whose cutover scales a service not configured for its target is refused', async () => {
  const dir = freshStore();
  const before = witness(dir);
  const result = await invokeBundle(
    bundled.bundleOf('MigratePreflight'),
    {
      source: login(a, 'shop'),
      target: login(a, 'drill'),
      store: `file://${dir}`,
      cutover: { ecsServices: [{ cluster: 'prod', service: 'api', desiredCount: 2 }] },
    },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.NotConfigured',
    errorMessage:
      'cutover.ecsServices prod/api not configured for target "drill" (its cutoverEcsServices: none): configure them and deploy',
  });
  expectUntouched(dir, before);
});

test('a create restore of a 500 GiB backup without large objects streams: planned on the least disk of a Fargate task', async () => {
  expect(bigBackup.objects.find((o) => o.kind === 'dump')).toMatchObject({ largeObjects: false });
  const result = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    { store: `file://${store}`, backup: bigBackup.id, name: 'shop', target: login(a, 'drill') },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: true,
    result: expect.objectContaining({
      backupId: bigBackup.id,
      taskSize: { cpu: '2048', memoryMiB: '8192', ephemeralStorageGiB: 21 },
    }),
  });
});

test('a restore whose files cannot fit a Fargate task is refused before anything is downloaded: large objects, or --mode clean', async () => {
  const before = witness(store);
  const result = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    { store: `file://${store}`, backup: bigWithLargeObjects.id, name: 'shop', target: login(a, 'drill') },
    lambdaEnv(),
  );
  expect(result).toMatchObject({ ok: false, errorType: 'Pgferry.InvalidInput' });
  expect((result as { errorMessage: string }).errorMessage).toMatch(
    new RegExp(
      `^backup ${bigWithLargeObjects.id} needs 605\\.\\d GiB of disk \\(0\\.0 GiB downloaded and 500\\.0 GiB decompressed, with a margin; ` +
        'its large objects are restored from files, not streamed\\): a Fargate task has at most 200 GiB: .*; nothing was downloaded$',
    ),
  );
  const clean = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    {
      store: `file://${store}`,
      backup: bigBackup.id,
      name: 'shop',
      target: login(a, 'drill'),
      mode: 'clean',
    },
    lambdaEnv(),
  );
  expect(clean).toMatchObject({ ok: false, errorType: 'Pgferry.InvalidInput' });
  expect((clean as { errorMessage: string }).errorMessage).toMatch(
    /needs 605\.\d GiB of disk \(0\.0 GiB downloaded and 500\.0 GiB decompressed, with a margin\): a Fargate task has at most 200 GiB/,
  );
  expectUntouched(store, before);
});

test('a restore selecting a non-ASCII name of a backup in an encoding pgferry cannot convert to (EUC_TW) is refused by the bundled preflight: no secret read, no connection, nothing written', async () => {
  const before = witness(store);
  const result = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    {
      store: `file://${store}`,
      backup: eucTw.id,
      name: 'shop',
      target: login(a, 'drill'),
      schemas: ['資料'],
    },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.InvalidInput',
    errorMessage:
      '--schema "資料" cannot be matched exactly with the backup\'s names: its database is in EUC_TW, and pgferry ' +
      'has no exact conversion of names to EUC_TW; restore the whole backup, or back up just that schema or ' +
      'table (backup --schema, --table) and restore that; nothing was restored',
  });
  expectUntouched(store, before);
  expect(
    await socketQuery(a, "SELECT 1 FROM pg_database WHERE datname LIKE '%drill%' AND datname <> 'drill'"),
  ).toEqual([]);
});

test('a restore whose --table selects nothing of the backup is refused by the bundled preflight: no secret read, no connection, nothing written', async () => {
  const before = witness(store);
  const result = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    {
      store: `file://${store}`,
      backup: backup.id,
      name: 'shop',
      target: login(a, 'drill'),
      tables: ['T'],
    },
    lambdaEnv(),
  );
  expect(result).toEqual({
    ok: false,
    errorType: 'Pgferry.InvalidInput',
    errorMessage:
      `--table "T" matches nothing in backup ${backup.id}: it has no table, view, materialized view, sequence or ` +
      `foreign table of that exact name (as pg_restore's -t: the name alone, case included); close names: "t" (in "public"); ` +
      'nothing was restored',
  });
  expectUntouched(store, before);
  expect(
    await socketQuery(a, "SELECT 1 FROM pg_database WHERE datname LIKE '%drill%' AND datname <> 'drill'"),
  ).toEqual([]);
});

test('a restore of a schema-qualified --table: refused by the bundled preflight when it matches nothing (close names; nothing read, connected or written), planned when it names a table', async () => {
  const before = witness(store);
  const request = { store: `file://${store}`, backup: backup.id, name: 'shop', target: login(a, 'drill') };
  const refused = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    { ...request, tables: ['public.T'] },
    lambdaEnv(),
  );
  expect(refused).toEqual({
    ok: false,
    errorType: 'Pgferry.InvalidInput',
    errorMessage:
      `--table "public.T" matches nothing in backup ${backup.id}: it has no table, view, materialized view, sequence or ` +
      'foreign table named "T" in schema "public" (names match exactly, case included); close names: "public.t"; ' +
      'nothing was restored',
  });
  expectUntouched(store, before);
  const planned = await invokeBundle(
    bundled.bundleOf('RestorePreflight'),
    { ...request, tables: ['public.t'] },
    lambdaEnv(),
  );
  expect(planned).toEqual({ ok: true, result: expect.objectContaining({ backupId: backup.id }) });
});

test('so is its verification, whose throwaway server holds the restored database: streamed, that alone; with large objects, the files as well', async () => {
  const before = witness(store);
  const verify = (backup: BackupManifest) =>
    invokeBundle(
      bundled.bundleOf('VerifyPreflight'),
      { store: `file://${store}`, backup: backup.id, name: 'shop' },
      lambdaEnv(),
    );
  const streamed = await verify(bigBackup);
  expect(streamed).toMatchObject({ ok: false, errorType: 'Pgferry.InvalidInput' });
  expect((streamed as { errorMessage: string }).errorMessage).toMatch(
    /needs 605\.\d GiB of disk \(0\.0 GiB of the archive's definitions, its data streamed, and 500\.0 GiB restored into the verification's server, with a margin\): a Fargate task has at most 200 GiB/,
  );
  const files = await verify(bigWithLargeObjects);
  expect(files).toMatchObject({ ok: false, errorType: 'Pgferry.InvalidInput' });
  expect((files as { errorMessage: string }).errorMessage).toMatch(
    /needs 1205\.\d GiB of disk \(0\.0 GiB downloaded and 500\.0 GiB decompressed, and 500\.0 GiB restored into the verification's server, with a margin; its large objects are restored from files, not streamed\): a Fargate task has at most 200 GiB/,
  );
  expectUntouched(store, before);
});

/** Runs the pg-tools runner on `job` with the environment the task definition gives it. */
function runRunner(
  action: string,
  key: string,
): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  const taskDefinitions = Template.fromStack(bundled.stack).findResources('AWS::ECS::TaskDefinition');
  const [tools] = Object.values(taskDefinitions) as {
    Properties: { ContainerDefinitions: { Environment: { Name: string; Value: string }[] }[] };
  }[];
  const taskEnv = Object.fromEntries(
    tools.Properties.ContainerDefinitions[0].Environment.filter((e) => e.Name !== 'PGFERRY_PG_BIN_DIRS').map(
      (e) => [e.Name, e.Value],
    ),
  );
  expect(taskEnv.PGFERRY_BINDINGS).toBeDefined();
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [path.join(REPO, 'dist', 'containers', 'pg-tools', 'src', 'main.js')],
      {
        env: {
          ...cliEnv(),
          ...taskEnv,
          ...sm.env(),
          NODE_EXTRA_CA_CERTS: caBundle,
          PGFERRY_ACTION: action,
          PGFERRY_JOB_STORE: `file://${store}`,
          PGFERRY_JOB_KEY: key,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        // The log's errors go to stderr, the rest to stdout.
        lines: `${out}${stderr}`
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      }),
    );
  });
}

test('the runner refuses a job no preflight would have made: a restore into an unconfigured server', async () => {
  const restoreId = newBackupId();
  const plan: RestorePlan = {
    schemaVersion: SCHEMA_VERSION,
    restoreId,
    request: RestoreRequestSchema.parse({
      store: `file://${store}`,
      backup: backup.id,
      target: login(b, 'forged'),
    }),
    manifest: backup,
    targetServer: { version: '15.0', major: 15 },
    jobs: 1,
    toastCompression: 'lz4',
    taskSize: { cpu: '1024', memoryMiB: '2048', ephemeralStorageGiB: 21 },
    startedAt: new Date().toISOString(),
  };
  const key = jobKey('restore', 'shop', backup.id, restoreId);
  await storeJob(openStore(`file://${store}`), key, 'restore', plan);
  const before = witness(store);
  const { code, lines } = await runRunner('restore', key);
  expect(code).toBe(1);
  expect(lines.at(-1)).toMatchObject({
    message: 'failed',
    errorName: 'Pgferry.NotConfigured',
    errorMessage: `secret ${SECRET} is configured for "shop" (postgres@127.0.0.1:${a.server.port}/shop), "drill" (postgres@127.0.0.1:${a.server.port}/drill), not for postgres@127.0.0.1:${b.server.port}/forged: on AWS a login is used only with the server, port, database and user it is configured for`,
  });
  // No report (a restore's runner writes one whatever the outcome, once it starts), nothing on B.
  expectUntouched(store, before);
  expect(await socketQuery(b, "SELECT 1 FROM pg_database WHERE datname = 'forged'")).toEqual([]);
});
