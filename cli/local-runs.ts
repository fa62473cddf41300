/**
 * The local run host (`pgferry serve`): the API's runs executed on this machine by the local
 * executor (./local-executor.ts), as `pgferry backup` and the others run them, but detached from
 * the HTTP request that started them — a run goes on when its client disconnects.
 *
 * Each run is a small JSON file under `<stateDir>/runs/` (mode 0600: it holds the request, never
 * a password), rewritten as the run changes state. A host opening the folder marks the runs a
 * previous `serve` left `running` as failed: that process is gone, so they are not running, and
 * their workflows' own cleanup (or the next run's) removes what they left. One `serve` uses a
 * state folder at a time (`serve.pid`), so a run another live `serve` executes is never marked.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import {
  compareRuns,
  IdempotencyConflict,
  pageOf,
  type Run,
  type RunFilter,
  type RunHost,
  type RunKind,
  type RunList,
  runDatabase,
  type StartRun,
} from '../api/runs';
import {
  BackupManifestSchema,
  BackupOutcomeSchema,
  BackupRequestSchema,
  MigrateOutcomeSchema,
  MigrateReportSchema,
  MigrateRequestSchema,
  parsePayload,
  RestoreOutcomeSchema,
  RestoreReportSchema,
  RestoreRequestSchema,
  VerifyOutcomeSchema,
  VerifyReportSchema,
  VerifyRequestSchema,
} from '../core/contracts';
import type { Credentials } from '../core/credentials';
import { errorMessage, PgferryError } from '../core/errors';
import type { BackupStore } from '../core/store';
import type { TaskProgress } from '../core/task-progress';
import type { LocalRunOptions } from './local-executor';

/** A run's workflow, as the local executor runs it (tests give their own). */
export type RunWorkflow = (kind: RunKind, request: unknown, options: LocalRunOptions) => Promise<unknown>;

/** The local executor's four workflows. */
export const localWorkflows: RunWorkflow = async (kind, request, options) => {
  const executor = await import('./local-executor');
  switch (kind) {
    case 'backup':
      return executor.runBackupWorkflow(request, options);
    case 'restore':
      return executor.runRestoreWorkflow(request, options);
    case 'verify':
      return executor.runVerifyWorkflow(request, options);
    case 'migrate':
      return executor.runMigrateWorkflow(request, options);
  }
};

/** The message of a run that a stopped `serve` was executing. */
export const INTERRUPTED_BY_STOP = 'interrupted: pgferry serve stopped';

/** How long a finished run's file is kept: Step Functions keeps an execution's name 90 days. */
export const RUN_RETENTION_DAYS = 90;

export interface LocalRunHostOptions {
  store: BackupStore;
  /** The folder of the run files and the `serve.pid` lock. */
  stateDir: string;
  /** The server's own passwords (PGPASSWORD, …, as the CLI reads them): never in a request. */
  credentials: Credentials;
  /** Told of every run that ends (the webhook). */
  onFinished?: (run: Run) => void;
  /** @default the local executor */
  runWorkflow?: RunWorkflow;
  now?: () => Date;
}

/** What a run file holds: the run, its request (no password) and its idempotency key's fingerprint. */
interface RunRecord {
  run: Run;
  request: unknown;
  idempotency?: { key: string; fingerprint: string };
}

const REQUEST_SCHEMAS = {
  backup: BackupRequestSchema,
  restore: RestoreRequestSchema,
  verify: VerifyRequestSchema,
  migrate: MigrateRequestSchema,
} as const;

const OUTCOMES = {
  backup: { outcome: BackupOutcomeSchema, document: BackupManifestSchema },
  restore: { outcome: RestoreOutcomeSchema, document: RestoreReportSchema },
  verify: { outcome: VerifyOutcomeSchema, document: VerifyReportSchema },
  migrate: { outcome: MigrateOutcomeSchema, document: MigrateReportSchema },
} as const;

export class LocalRunHost implements RunHost {
  private readonly records = new Map<string, RunRecord>();
  private readonly byKey = new Map<string, RunRecord>();
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly runWorkflow: RunWorkflow;
  private readonly now: () => Date;
  private readonly runsDir: string;

  private constructor(private readonly options: LocalRunHostOptions) {
    this.runWorkflow = options.runWorkflow ?? localWorkflows;
    this.now = options.now ?? (() => new Date());
    this.runsDir = path.join(options.stateDir, 'runs');
  }

  /**
   * Opens the state folder: takes its lock, loads the runs of the last {@link RUN_RETENTION_DAYS}
   * days (older files are removed), and marks those left running as failed.
   */
  static async open(options: LocalRunHostOptions): Promise<LocalRunHost> {
    const host = new LocalRunHost(options);
    await host.lock();
    await host.load();
    return host;
  }

  async start({ kind, request, idempotencyKey }: StartRun): Promise<{ run: Run; created: boolean }> {
    const full = parsePayload(
      REQUEST_SCHEMAS[kind] as import('zod').ZodType,
      { ...(request as object), store: this.options.store.url },
      `${kind} request`,
    );
    refuseAwsOnly(kind, full);
    // Everything up to the map's update is synchronous: of two requests with one key, the
    // second finds the first's record.
    const fingerprint = fingerprintOf(kind, request);
    if (idempotencyKey !== undefined) {
      const first = this.byKey.get(idempotencyKey);
      if (first) {
        if (first.idempotency?.fingerprint !== fingerprint) throw new IdempotencyConflict(idempotencyKey);
        return { run: { ...first.run }, created: false };
      }
    }
    const startedAt = this.now();
    const run: Run = {
      id: newRunId(startedAt),
      kind,
      status: 'running',
      startedAt: startedAt.toISOString(),
      ...(runDatabase(kind, request) === undefined ? {} : { database: runDatabase(kind, request) }),
    };
    const record: RunRecord = {
      run,
      request: full,
      ...(idempotencyKey === undefined ? {} : { idempotency: { key: idempotencyKey, fingerprint } }),
    };
    this.records.set(run.id, record);
    if (idempotencyKey !== undefined) this.byKey.set(idempotencyKey, record);
    await this.save(record);
    this.execute(record);
    return { run: { ...run }, created: true };
  }

  async get(id: string): Promise<Run | undefined> {
    const record = this.records.get(id);
    return record && { ...record.run };
  }

  async list(filter: RunFilter): Promise<RunList> {
    const since = filter.since === undefined ? undefined : Date.parse(filter.since);
    const matching = [...this.records.values()]
      .map((r) => r.run)
      .filter(
        (run) =>
          (filter.kind === undefined || run.kind === filter.kind) &&
          (filter.status === undefined || run.status === filter.status) &&
          (since === undefined || Date.parse(run.startedAt) >= since),
      )
      .sort(compareRuns)
      .map((run) => ({ ...run }));
    return pageOf(matching, filter);
  }

  async cancel(id: string): Promise<Run | undefined> {
    const record = this.records.get(id);
    if (!record) return undefined;
    this.running.get(id)?.controller.abort(new PgferryError('Interrupted', 'cancelled through the API'));
    return { ...record.run };
  }

  /**
   * Stops every running run (`pgferry serve` is stopping): each is aborted as Ctrl-C aborts a
   * command's, its cleanup runs, and it ends failed with {@link INTERRUPTED_BY_STOP}. Resolves when
   * they have ended or `waitMs` has passed; the lock is released either way.
   */
  async close(waitMs: number): Promise<void> {
    const runs = [...this.running.values()];
    for (const { controller } of runs) controller.abort(new PgferryError('Interrupted', INTERRUPTED_BY_STOP));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(runs.map((r) => r.done)),
      new Promise((resolve) => {
        timer = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(timer);
    await rm(this.lockFile, { force: true });
  }

  /** Resolves when every run has ended (the tests'). */
  async settled(): Promise<void> {
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private execute(record: RunRecord): void {
    const { run } = record;
    const controller = new AbortController();
    const options: LocalRunOptions = {
      credentials: this.options.credentials,
      signal: controller.signal,
      onEvent: (event) => {
        const { type, state } = event as { type?: string; state?: { name?: string } };
        if (type === 'StateEntered' && state?.name && run.status === 'running') {
          run.state = state.name;
          void this.save(record).catch(() => undefined);
        }
      },
      onPhase: (phase) => {
        run.progress = { phase };
      },
      onProgress: (progress: TaskProgress) => {
        run.progress = { ...((run.progress as object | undefined) ?? {}), ...progress };
      },
    };
    const done = (async () => {
      try {
        const output = await this.runWorkflow(run.kind, record.request, options);
        run.result = await this.documentOf(run.kind, output);
        run.status = 'succeeded';
      } catch (err) {
        const reason = controller.signal.reason as PgferryError | undefined;
        const stopped = controller.signal.aborted && reason?.message === INTERRUPTED_BY_STOP;
        run.status = controller.signal.aborted && !stopped ? 'cancelled' : 'failed';
        run.error = stopped
          ? { error: 'Pgferry.Interrupted', cause: `${INTERRUPTED_BY_STOP} (${errorMessage(err)})` }
          : { error: errorName(err), cause: errorMessage(err) };
      }
      run.finishedAt = this.now().toISOString();
      run.progress = undefined;
      await this.save(record).catch(() => undefined);
      this.running.delete(run.id);
      this.options.onFinished?.({ ...run });
    })();
    this.running.set(run.id, { controller, done });
  }

  /** The manifest or report a workflow's output names, read from the store. */
  private async documentOf(kind: RunKind, output: unknown): Promise<unknown> {
    const { outcome, document } = OUTCOMES[kind];
    const at = parsePayload(outcome as import('zod').ZodType<{ key: string }>, output, `${kind} outcome`);
    const raw = await this.options.store.getJson(at.key);
    if (raw === undefined)
      throw new PgferryError('RecordFailed', `the ${kind} run's document ${at.key} is missing`);
    return parsePayload(document as import('zod').ZodType, raw, `${kind} document`);
  }

  private get lockFile(): string {
    return path.join(this.options.stateDir, 'serve.pid');
  }

  /** Takes the state folder for this process, unless a live `serve` has it. */
  private async lock(): Promise<void> {
    await mkdir(this.runsDir, { recursive: true, mode: 0o700 });
    const other = Number((await readFile(this.lockFile, 'utf8').catch(() => '')).trim());
    if (other && other !== process.pid && isAlive(other)) {
      throw new PgferryError(
        'InvalidInput',
        `another pgferry serve (pid ${other}) uses ${this.options.stateDir}: stop it, or give this one --state-dir`,
      );
    }
    await writeFile(this.lockFile, `${process.pid}\n`, { mode: 0o600 });
  }

  private async load(): Promise<void> {
    const oldest = this.now().getTime() - RUN_RETENTION_DAYS * 86_400_000;
    const interrupted: Run[] = [];
    for (const name of await readdir(this.runsDir)) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(this.runsDir, name);
      let record: RunRecord;
      try {
        record = JSON.parse(await readFile(file, 'utf8')) as RunRecord;
      } catch {
        continue; // a file being written when the last serve died: its run never started
      }
      if (Date.parse(record.run.finishedAt ?? record.run.startedAt) < oldest) {
        await rm(file, { force: true });
        continue;
      }
      if (record.run.status === 'running') {
        record.run.status = 'failed';
        record.run.finishedAt = this.now().toISOString();
        record.run.error = { error: 'Pgferry.Interrupted', cause: INTERRUPTED_BY_STOP };
        delete record.run.progress;
        await this.save(record);
        interrupted.push(record.run);
      }
      this.records.set(record.run.id, record);
      if (record.idempotency) this.byKey.set(record.idempotency.key, record);
    }
    // Whoever waits on these runs' events (the webhook) hears that they ended.
    for (const run of interrupted) this.options.onFinished?.({ ...run });
  }

  /** Writes the run's file atomically (a reader sees the old run or the new one). */
  private async save(record: RunRecord): Promise<void> {
    const file = path.join(this.runsDir, `${record.run.id}.json`);
    const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    const { progress: _, ...run } = record.run;
    await writeFile(temp, `${JSON.stringify({ ...record, run }, null, 2)}\n`, { mode: 0o600 });
    await rename(temp, file);
  }
}

/**
 * A run id: its start time and random hex, as backup ids are (sorting by id sorts by time),
 * prefixed so it is never taken for one.
 */
function newRunId(now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `run-${stamp}-${randomBytes(4).toString('hex')}`;
}

/** What identifies a request for its idempotency key: the kind and the body, keys in order. */
function fingerprintOf(kind: RunKind, request: unknown): string {
  return createHash('sha256')
    .update(`${kind}\n${canonicalJson(request)}`)
    .digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * What a local run can never do, refused before it starts (it would fail at that state): a
 * migration's cutover by Secrets Manager or ECS runs only on AWS.
 */
function refuseAwsOnly(kind: RunKind, request: unknown): void {
  if (kind !== 'migrate') return;
  const { cutover } = request as { cutover?: { secretArn?: string; ecsServices?: unknown[] } };
  if (cutover?.secretArn !== undefined || cutover?.ecsServices?.length) {
    throw new PgferryError(
      'InvalidInput',
      'cutover.secretArn and cutover.ecsServices are carried out only on AWS: leave them out of a local migration',
    );
  }
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'Error';
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
