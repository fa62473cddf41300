/**
 * `pgferry serve` over real HTTP on a real PostgreSQL server: a backup, a restore, a verification
 * and a migration started by POST and followed by GET to success; a failed run with its error;
 * cancel; an idempotent retry and a conflicting key; 401 without the token; 400 for bad bodies
 * (nothing started); the webhook; no password in any answer, run file or log line; and a restart
 * that marks the run the killed server was executing as failed. One major: the workflows' own
 * tests cover the others (the API adds nothing that depends on it).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { verifyWebhookSignature } from '../../cli/webhook';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import { type Served, startServe as startServed } from '../support/served';

const pg = testEnv().server(15);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-serve-'));
const storeDir = path.join(dir, 'store');
const stateDir = path.join(dir, 'state');
const database = uniqueName('served');
const restored = uniqueName('served_restored');
const migrated = uniqueName('served_migrated');
const connection = (name: string) => ({ host: pg.host, port: pg.port, user: pg.user, database: name });

/** `pgferry serve` on the test's store, the password only in its environment, posting to `webhook`. */
function startServe(webhook: string): Promise<Served> {
  return startServed(storeDir, stateDir, { PGPASSWORD: pg.password }, ['--webhook', webhook]);
}

let served: Served;
let hook: Server;
let hookUrl: string;
const hookBodies: {
  'detail-type': string;
  detail: { id: string; status: string; database: string | null };
}[] = [];
/** Each delivery's `Pgferry-Signature` and raw body. */
const hookSignatures: { header: string | undefined; body: string }[] = [];
/** Every response body the tests read: none may hold the password. */
const answers: string[] = [];
/** A session holding a lock that keeps a backup waiting (the run to cancel, the run to interrupt). */
let locker: Client | undefined;

async function call(method: string, route: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${served.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${served.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  answers.push(text);
  return { status: response.status, headers: response.headers, body: JSON.parse(text) };
}

/** Follows a run with GET until it has ended. */
async function finished(id: string, limitMs = 240_000) {
  const until = Date.now() + limitMs;
  for (;;) {
    const { body } = await call('GET', `/v1/runs/${id}`);
    if (body.status !== 'running') return body;
    if (Date.now() > until) throw new Error(`run ${id} still running: ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** Follows a run until it is in `state` (a workflow state). */
async function inState(id: string, state: string) {
  for (let i = 0; i < 400; i++) {
    const { body } = await call('GET', `/v1/runs/${id}`);
    if (body.state === state) return body;
    if (body.status !== 'running') throw new Error(`run ${id} ended: ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`run ${id} never reached ${state}`);
}

async function holdLock(): Promise<void> {
  locker = new Client(pg.clientConfig(database));
  await locker.connect();
  await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
}

async function releaseLock(): Promise<void> {
  await locker?.end().catch(() => undefined);
  locker = undefined;
}

beforeAll(async () => {
  hook = createServer((req, res) => {
    let data = '';
    req.on('data', (d) => {
      data += d;
    });
    req.on('end', () => {
      hookBodies.push(JSON.parse(data));
      hookSignatures.push({ header: req.headers['pgferry-signature'] as string | undefined, body: data });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
  await createSeededDatabase(
    pg,
    database,
    "CREATE TABLE items AS SELECT g AS id, repeat('x', g % 50) AS body FROM generate_series(1, 2000) g;",
  );
  served = await startServe(hookUrl);
}, 60_000);

afterAll(async () => {
  await releaseLock();
  served?.child.kill('SIGTERM');
  hook?.close();
  for (const name of [database, restored, migrated]) await dropDatabase(pg, name);
  rmSync(dir, { recursive: true, force: true });
});

test('401 without the token, or with another', async () => {
  for (const authorization of [undefined, 'Bearer not-the-token-at-all', `Basic ${served.token}`]) {
    const response = await fetch(`${served.url}/v1/runs`, {
      headers: authorization === undefined ? {} : { authorization },
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
  }
  const post = await fetch(`${served.url}/v1/backups`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ source: connection(database) }),
  });
  expect(post.status).toBe(401);
  expect((await call('GET', '/v1/runs')).body.runs).toEqual([]);
});

test('400 for bad bodies, naming every problem, and nothing started', async () => {
  const bad = await call('POST', '/v1/backups', {
    source: { host: pg.host, port: 'five' },
    store: 'file:///etc',
  });
  expect(bad.status).toBe(400);
  expect(bad.body.issues.map((i: { path: string }) => i.path)).toEqual(
    expect.arrayContaining(['source.port', 'source.database', 'source.user']),
  );
  expect((await call('POST', '/v1/migrations', { source: connection(database) })).status).toBe(400);
  expect((await call('GET', '/v1/runs')).body.runs).toEqual([]);
});

let backupId = '';

test('a backup started by POST and followed by GET to success; an idempotent retry; a conflicting key', async () => {
  const body = { source: connection(database) };
  const started = await call('POST', '/v1/backups', body, { 'Idempotency-Key': `served-${database}` });
  expect(started.status).toBe(202);
  expect(started.body).toEqual({
    id: expect.any(String),
    kind: 'backup',
    status: 'running',
    links: { self: `/v1/runs/${started.body.id}` },
  });
  expect(started.headers.get('location')).toBe(`/v1/runs/${started.body.id}`);

  const retried = await call('POST', '/v1/backups', body, { 'Idempotency-Key': `served-${database}` });
  expect(retried.body.id).toBe(started.body.id);
  expect(retried.headers.get('idempotent-replayed')).toBe('true');
  const conflict = await call(
    'POST',
    '/v1/backups',
    { source: connection(restored) },
    { 'Idempotency-Key': `served-${database}` },
  );
  expect(conflict.status).toBe(409);

  const run = await finished(started.body.id);
  expect(run).toMatchObject({ kind: 'backup', status: 'succeeded', database, state: expect.any(String) });
  expect(run.result).toMatchObject({ database, status: 'complete' });
  backupId = run.result.id;
  expect((await call('GET', '/v1/runs?kind=backup')).body.runs).toHaveLength(1);

  const listed = await call('GET', `/v1/backups?database=${database}`);
  expect(listed.body.backups.map((b: { id: string }) => b.id)).toEqual([backupId]);
  const shown = await call('GET', `/v1/backups/${database}/${backupId}`);
  expect(shown.body).toMatchObject({ manifest: { id: backupId }, reports: { restore: [], verify: [] } });
  const status = await call('GET', `/v1/status?database=${database}&maxAge=1d`);
  expect(status.body.databases).toEqual([
    expect.objectContaining({ database, newest: expect.objectContaining({ id: backupId }), problems: [] }),
  ]);
}, 300_000);

test('a restore, then a verification, to success; the backup shows their reports', async () => {
  const restore = await call('POST', '/v1/restores', {
    backup: backupId,
    name: database,
    target: connection(restored),
  });
  const restoreRun = await finished(restore.body.id);
  expect(restoreRun).toMatchObject({
    status: 'succeeded',
    result: { kind: 'restore', status: 'passed', backupId },
  });
  const rows = await withClient(pg, restored, (c) => c.query('SELECT count(*)::int AS n FROM items'));
  expect(rows.rows[0].n).toBe(2000);

  const verify = await call('POST', '/v1/verifications', { backup: 'latest', name: database });
  expect(await finished(verify.body.id)).toMatchObject({
    status: 'succeeded',
    result: { kind: 'verify', status: 'passed', backupId },
  });
  const shown = await call('GET', `/v1/backups/${database}/latest`);
  expect(shown.body.reports.restore).toHaveLength(1);
  expect(shown.body.reports.verify).toHaveLength(1);
}, 300_000);

test('a migration to success', async () => {
  const migration = await call('POST', '/v1/migrations', {
    source: connection(database),
    target: connection(migrated),
  });
  expect(migration.status).toBe(202);
  const run = await finished(migration.body.id);
  expect(run).toMatchObject({
    kind: 'migrate',
    status: 'succeeded',
    result: { databases: [expect.objectContaining({ database })] },
  });
  const rows = await withClient(pg, migrated, (c) => c.query('SELECT count(*)::int AS n FROM items'));
  expect(rows.rows[0].n).toBe(2000);
}, 300_000);

test('a failed run is reported with its error', async () => {
  // The restored database exists: a restore in create mode refuses it before writing.
  const restore = await call('POST', '/v1/restores', {
    backup: backupId,
    name: database,
    target: connection(restored),
  });
  const run = await finished(restore.body.id);
  expect(run).toMatchObject({
    status: 'failed',
    error: { error: expect.stringMatching(/^Pgferry\./), cause: expect.stringContaining(restored) },
  });
}, 120_000);

/** The lease files of the served database (core/lease.ts: `<name>/.lease/<generation>.json`). */
function leases(): string[] {
  try {
    return readdirSync(path.join(storeDir, database, '.lease'));
  } catch {
    return [];
  }
}

test('DELETE cancels a running backup: its cleanup runs and releases the lease, nothing is listed, the run ends cancelled', async () => {
  const listedIds = async () =>
    (await call('GET', `/v1/backups?database=${database}`)).body.backups.map((b: { id: string }) => b.id);
  const before = await listedIds();
  await holdLock();
  try {
    const started = await call('POST', '/v1/backups', {
      source: connection(database),
      lockWaitTimeoutMs: 600_000,
    });
    await inState(started.body.id, 'Dump');
    expect(leases()).toHaveLength(1);
    const cancelling = await call('DELETE', `/v1/runs/${started.body.id}`);
    expect(cancelling.status).toBe(202);
    const run = await finished(started.body.id, 60_000);
    expect(run).toMatchObject({
      status: 'cancelled',
      error: { error: expect.any(String), cause: expect.any(String) },
    });
    expect((await call('DELETE', `/v1/runs/${started.body.id}`)).status).toBe(409);
    // The cleanup released the database's lease: the next backup is not refused for 13 hours.
    expect(leases()).toEqual([]);
  } finally {
    await releaseLock();
  }
  expect(await listedIds()).toEqual(before);
}, 120_000);

test('the webhook received each finished run, as EventBridge detail, signed with the secret in the state folder', async () => {
  for (let i = 0; i < 50 && hookBodies.length < 6; i++)
    await new Promise((resolve) => setTimeout(resolve, 200));
  const types = hookBodies.map((b) => b['detail-type']);
  expect(types).toEqual(
    expect.arrayContaining([
      'Backup Succeeded',
      'Restore Succeeded',
      'Verification Succeeded',
      'Migration Succeeded',
      'Restore Failed',
      'Backup Cancelled',
    ]),
  );
  expect(hookBodies.find((b) => b['detail-type'] === 'Backup Succeeded')?.detail).toMatchObject({
    status: 'succeeded',
    database,
  });
  // Every delivery is signed with the secret serve created (0600, beside the token) and printed
  // only the path of.
  const secretFile = path.join(stateDir, 'webhook-secret');
  expect(statSync(secretFile).mode & 0o777).toBe(0o600);
  const secret = readFileSync(secretFile, 'utf8').trim();
  expect(served.stderr()).toContain(`a new webhook signing secret is in ${secretFile} (mode 0600)`);
  expect(served.stderr()).not.toContain(secret);
  expect(hookSignatures.length).toBe(hookBodies.length);
  for (const { header, body } of hookSignatures)
    expect(verifyWebhookSignature(header, body, secret)).toBe(true);
  expect(verifyWebhookSignature(hookSignatures[0].header, hookSignatures[0].body, served.token)).toBe(false);
}, 30_000);

test('a restart marks the run the killed server was executing as failed, never running', async () => {
  await holdLock();
  let id = '';
  try {
    const started = await call('POST', '/v1/backups', {
      source: connection(database),
      lockWaitTimeoutMs: 600_000,
    });
    id = started.body.id;
    await inState(id, 'Dump');
    served.child.kill('SIGKILL');
    await new Promise((resolve) => served.child.once('exit', resolve));
  } finally {
    await releaseLock();
  }
  const before = served.stderr();
  served = await startServe(hookUrl);
  expect(await call('GET', `/v1/runs/${id}`)).toMatchObject({
    status: 200,
    body: {
      status: 'failed',
      error: { error: 'Pgferry.Interrupted', cause: 'interrupted: pgferry serve stopped' },
    },
  });
  // A pipeline waiting on the webhook hears that it ended.
  for (let i = 0; i < 50 && !hookBodies.some((b) => b.detail.id === id); i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  expect(hookBodies.find((b) => b.detail.id === id)).toMatchObject({
    'detail-type': 'Backup Failed',
    detail: { status: 'failed', database },
  });
  // No password in any answer, run file or line the servers printed.
  const runFiles = readdirSync(path.join(stateDir, 'runs')).map((f) =>
    readFileSync(path.join(stateDir, 'runs', f), 'utf8'),
  );
  for (const text of [...answers, ...runFiles, before, served.stderr()])
    expect(text).not.toContain(pg.password);
}, 120_000);
