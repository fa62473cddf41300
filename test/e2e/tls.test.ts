/**
 * TLS to the database: `sslmode` and the CA bundle (`sslrootcert`) reach both node-postgres (the
 * preflight steps, the runner's own sessions) and libpq (pg_dump, pg_dumpall, pg_restore). The
 * server accepts only TLS over TCP, so a run that succeeds used TLS for every session.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { parseConnectionUrl } from '../../core/connection';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { libpqEnv } from '../../core/postgres/connect';
import { runCli } from '../support/cli';
import { startTlsPostgres, type TlsPostgres } from '../support/tls-postgres';

const run = promisify(execFile);
const password = `p@ss:w/rd%#?&=+ '\\tls${process.pid}`;
const database = `tls_${process.pid}`;
let tls: TlsPostgres;

/** Setup over the server's unix socket (trust), which the tests' TCP rules do not cover. */
async function socketQuery(sql: string, db = 'postgres'): Promise<void> {
  const c = new Client({ host: tls.server.socketDir, port: tls.server.port, user: 'postgres', database: db });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  tls = await startTlsPostgres(password);
  await socketQuery(`CREATE DATABASE ${database}`);
  await socketQuery(
    'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g',
    database,
  );
}, 120_000);
afterAll(() => tls?.stop());

function url(params: string, host = '127.0.0.1', db = database): string {
  return `postgres://postgres:${encodeURIComponent(password)}@${host}:${tls.server.port}/${db}?${params}`;
}

function freshStore(): string {
  return mkdtempSync(path.join(tmpdir(), 'pgferry-tls-store-'));
}

async function expectRefused(source: string, message: RegExp): Promise<void> {
  const store = freshStore();
  const result = await runCli(['backup', '--source', source, '--store', store]);
  expect(result.code).toBe(1);
  expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^pgferry: /)]);
  expect(result.stderr).toMatch(message);
  expect(readdirSync(store)).toEqual([]);
}

test('sslmode=require backs up over TLS: every session of the run is encrypted', async () => {
  const before = tls.connectionLog().length;
  const result = await runCli([
    'backup',
    '--source',
    url('sslmode=require'),
    '--store',
    freshStore(),
    '--json',
  ]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect((JSON.parse(result.stdout) as BackupManifest).tables).toMatchObject([
    { schema: 'public', name: 't', rows: 1000 },
  ]);
  // Preflight, the runner's snapshot session, pg_dump and pg_dumpall: all TLS (the server refuses anything else).
  const sessions = tls.connectionLog().slice(before);
  expect(sessions.length).toBeGreaterThanOrEqual(4);
  // The runner's sessions carry its run's id (its progress watchdog finds them by it).
  for (const line of sessions)
    expect(line).toMatch(
      /application_name=pgferry( \d{8}T\d{6}Z-[0-9a-f]{6})? SSL enabled \(protocol=TLSv1\.[23]/,
    );
});

test('sslmode=verify-full with the CA bundle backs up', async () => {
  const source = url(`sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.caFile)}`);
  const result = await runCli(['backup', '--source', source, '--store', freshStore()]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
});

test('sslmode=verify-full with the CA bundle restores (pg_restore and the runner verify the server)', async () => {
  const store = freshStore();
  const params = `sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.caFile)}`;
  const backup = await runCli(['backup', '--source', url(params), '--store', store]);
  expect(backup.code).toBe(0);
  const target = `tls_restored_${process.pid}`;
  const restore = await runCli([
    'restore',
    '--store',
    store,
    '--backup',
    backup.stdout.trim(),
    '--target',
    url(params, '127.0.0.1', target),
    '--json',
  ]);
  expect(restore.stderr).toBe('');
  expect(restore.code).toBe(0);
  expect((JSON.parse(restore.stdout) as RestoreReport).checks.rowCounts).toEqual([
    { schema: 'public', name: 't', rows: 1000, restoredRows: 1000 },
  ]);
});

test('sslmode=verify-full with another CA is refused with one line and nothing is stored', async () => {
  await expectRefused(
    url(`sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.otherCaFile)}`),
    /cannot connect to PostgreSQL at postgres@127\.0\.0\.1:\d+\/tls_\d+: .*certificate/,
  );
});

test('sslmode=verify-full to a host name the certificate does not name is refused', async () => {
  await expectRefused(
    url(`sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.caFile)}`, tls.unnamedHost),
    /cannot connect to PostgreSQL at postgres@127\.0\.0\.2:\d+\/tls_\d+: .*127\.0\.0\.2 is not in the cert's list/,
  );
});

test("sslmode=disable against a server that requires TLS is refused with the server's reason", async () => {
  await expectRefused(
    url('sslmode=disable'),
    /PostgreSQL refused the login for postgres@127\.0\.0\.1:\d+\/tls_\d+: no pg_hba\.conf entry .*no encryption/,
  );
});

test('a CA bundle that cannot be read is refused naming the file', async () => {
  await expectRefused(
    url('sslmode=verify-full&sslrootcert=/no/such/ca.pem'),
    /sslrootcert \/no\/such\/ca\.pem cannot be read: ENOENT/,
  );
});

describe('libpq tools get sslmode and the CA bundle from the connection', () => {
  const pgDump = (params: string) => {
    const { connection } = parseConnectionUrl(url(params));
    return run('/usr/lib/postgresql/15/bin/pg_dump', ['--schema-only'], {
      env: { PATH: process.env.PATH, ...libpqEnv(connection, password) },
    });
  };

  test('pg_dump verifies the server with the CA bundle', async () => {
    const { stdout } = await pgDump(`sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.caFile)}`);
    expect(stdout).toContain('CREATE TABLE public.t');
  });

  test('pg_dump refuses a server certificate another CA signed', async () => {
    await expect(
      pgDump(`sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.otherCaFile)}`),
    ).rejects.toThrow(/certificate verify failed/);
  });
});
