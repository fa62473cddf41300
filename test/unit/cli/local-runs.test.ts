/**
 * The local run host with a stand-in for the workflows (the real ones run in
 * test/e2e/serve.test.ts): idempotency under concurrency, cancel, the run files, and a restart.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createApi } from '../../../api/app';
import { IdempotencyConflict, type Run } from '../../../api/runs';
import { INTERRUPTED_BY_STOP, LocalRunHost, type RunWorkflow } from '../../../cli/local-runs';
import { LocalStore } from '../../../core/store';

const source = { host: 'db.example.com', port: 5432, user: 'app', database: 'shop' };
let dir: string;
let started: number;
let finished: Run[];
/** Each started workflow's signal, and how to end it. */
let pending: { signal: AbortSignal; fail: (err: Error) => void }[];

/** A workflow that runs until it is aborted (then fails as the executor does) or failed. */
const waitingWorkflow: RunWorkflow = (_kind, _request, options) => {
  started++;
  return new Promise((_resolve, reject) => {
    pending.push({ signal: options.signal as AbortSignal, fail: reject });
    options.onEvent?.({ type: 'StateEntered', state: { name: 'Preflight' } });
    options.signal?.addEventListener('abort', () => reject(new Error('interrupted: dropped what it made')));
  });
};

const open = (stateDir = path.join(dir, 'state')) =>
  LocalRunHost.open({
    store: new LocalStore(path.join(dir, 'store')),
    stateDir,
    credentials: { source: 'the-server-password' },
    runWorkflow: waitingWorkflow,
    onFinished: (run) => finished.push(run),
  });

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-runs-'));
  started = 0;
  finished = [];
  pending = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('two concurrent POSTs with one key start one run; another body with the key is a conflict', async () => {
  const host = await open();
  const app = createApi({ runs: host, store: new LocalStore(path.join(dir, 'store')) });
  const post = (body: unknown) =>
    app.request('/v1/backups', {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'idempotency-key': 'deploy-42' },
    });
  const responses = await Promise.all([post({ source }), post({ source })]);
  const ids = await Promise.all(responses.map(async (r) => ((await r.json()) as { id: string }).id));
  expect(responses.map((r) => r.status)).toEqual([202, 202]);
  expect(ids[0]).toBe(ids[1]);
  expect(started).toBe(1);
  // The same request spelled with its defaults is the same request.
  expect((await post({ source: { ...source, sslmode: 'prefer' }, withRolePasswords: false })).status).toBe(
    202,
  );
  expect((await post({ source: { ...source, database: 'billing' } })).status).toBe(409);
  await expect(
    host.start({ kind: 'verify', request: { backup: 'latest', name: 'shop' }, idempotencyKey: 'deploy-42' }),
  ).rejects.toThrow(IdempotencyConflict);
  expect(started).toBe(1);
  await host.close(1000);
});

test('cancel aborts the workflow, which ends cancelled with its own account', async () => {
  const host = await open();
  const { run } = await host.start({ kind: 'backup', request: { source } });
  expect((await host.get(run.id))?.state).toBe('Preflight');
  await host.cancel(run.id);
  expect(pending[0].signal.aborted).toBe(true);
  await host.settled();
  const ended = await host.get(run.id);
  expect(ended).toMatchObject({ status: 'cancelled', error: { cause: 'interrupted: dropped what it made' } });
  expect(finished.map((r) => r.status)).toEqual(['cancelled']);
  await host.close(1000);
});

test('a failed workflow: failed, with its error', async () => {
  const host = await open();
  const { run } = await host.start({ kind: 'backup', request: { source } });
  const err = new Error('cannot reach PostgreSQL');
  err.name = 'Pgferry.SourceUnreachable';
  pending[0].fail(err);
  await host.settled();
  expect(await host.get(run.id)).toMatchObject({
    status: 'failed',
    error: { error: 'Pgferry.SourceUnreachable', cause: 'cannot reach PostgreSQL' },
    finishedAt: expect.any(String),
  });
  await host.close(1000);
});

test('run files are 0600 and hold the request with the store, never the server password', async () => {
  const host = await open();
  await host.start({ kind: 'backup', request: { source } });
  const runsDir = path.join(dir, 'state', 'runs');
  const [file] = readdirSync(runsDir);
  expect(statSync(path.join(runsDir, file)).mode & 0o777).toBe(0o600);
  const text = readFileSync(path.join(runsDir, file), 'utf8');
  expect(text).not.toContain('the-server-password');
  expect(JSON.parse(text).request).toMatchObject({
    source,
    store: new LocalStore(path.join(dir, 'store')).url,
  });
  await host.close(1000);
});

test('a restart marks the runs a dead serve was executing as failed, tells onFinished, and keeps its keys', async () => {
  const stateDir = path.join(dir, 'state');
  const first = await open(stateDir);
  const { run } = await first.start({ kind: 'backup', request: { source }, idempotencyKey: 'k' });
  // As if that serve were killed: its lock names a process that is gone.
  writeFileSync(path.join(stateDir, 'serve.pid'), '999999999\n');
  const second = await open(stateDir);
  expect(await second.get(run.id)).toMatchObject({
    status: 'failed',
    error: { error: 'Pgferry.Interrupted', cause: INTERRUPTED_BY_STOP },
  });
  expect((await second.start({ kind: 'backup', request: { source }, idempotencyKey: 'k' })).created).toBe(
    false,
  );
  await first.close(1000);
  await second.close(1000);
});

test('a stopping serve interrupts its runs: failed, saying so', async () => {
  const host = await open();
  const { run } = await host.start({ kind: 'backup', request: { source } });
  await host.close(5000);
  expect(await host.get(run.id)).toMatchObject({
    status: 'failed',
    error: { error: 'Pgferry.Interrupted', cause: expect.stringContaining(INTERRUPTED_BY_STOP) },
  });
});

test('a state folder a live serve holds is refused', async () => {
  const stateDir = path.join(dir, 'state');
  await open(stateDir);
  writeFileSync(path.join(stateDir, 'serve.pid'), `${process.ppid}\n`);
  await expect(open(stateDir)).rejects.toThrow(/another pgferry serve \(pid \d+\) uses .*--state-dir/);
});

test('a local migration with an AWS-only cutover is refused before it starts', async () => {
  const host = await open();
  await expect(
    host.start({
      kind: 'migrate',
      request: {
        source,
        target: source,
        cutover: { ecsServices: [{ cluster: 'c', service: 's', desiredCount: 1 }] },
      },
    }),
  ).rejects.toThrow(/only on AWS/);
  expect(started).toBe(0);
  await host.close(1000);
});

test('the list pages by a cursor: limit, then next, newest first, none repeated or lost when runs start meanwhile', async () => {
  let clock = Date.parse('2026-12-02T10:00:00Z');
  const host = await LocalRunHost.open({
    store: new LocalStore(path.join(dir, 'store')),
    stateDir: path.join(dir, 'state'),
    credentials: {},
    runWorkflow: waitingWorkflow,
    now: () => new Date(clock),
  });
  // Five runs, a second apart (two with one start time: the id orders them).
  for (const [i, at] of [0, 1, 1, 2, 3].entries()) {
    clock = Date.parse('2026-12-02T10:00:00Z') + at * 1000;
    await host.start({ kind: 'backup', request: { source, name: `db${i}` } });
  }
  const first = await host.list({ limit: 2 });
  expect(first).toHaveLength(2);
  expect(first.next).toEqual(expect.any(String));
  // A run started between the pages does not shift the next one.
  clock += 60_000;
  await host.start({ kind: 'backup', request: { source, name: 'late' } });
  const second = await host.list({ limit: 2, next: first.next });
  const third = await host.list({ limit: 2, next: second.next });
  expect(third.next).toBeUndefined();
  const paged = [...first, ...second, ...third].map((r) => r.database);
  expect(paged).toHaveLength(5);
  expect(new Set(paged).size).toBe(5);
  expect(paged).not.toContain('late');
  const all = (await host.list({})).filter((r) => r.database !== 'late').map((r) => r.database);
  expect(paged).toEqual(all);
  for (const { signal: _, fail } of pending) fail(new Error('done'));
  await host.settled();
  await host.close(1000);
});
