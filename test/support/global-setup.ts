/**
 * jest globalSetup (runs once, in the jest parent process): starts throwaway PostgreSQL servers (majors
 * from PGFERRY_TEST_MAJORS, default 14,15,17) and an s3rver in parallel, writes their description to a
 * JSON file and exports its path as PGFERRY_TEST_ENV_FILE (inherited by the test workers; read it with
 * `testEnv()` from ./env). Everything is stopped by global-teardown.ts; on failure here, whatever was
 * started is stopped before the error is rethrown.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ENV_FILE_VAR, type TestEnvFile } from './env';
import {
  killPostgresSync,
  type PostgresServerInfo,
  resolveMajors,
  startPostgres,
  stopPostgres,
} from './postgres';
import { type S3ChildProcess, startS3 } from './s3';
import { processAlive, systemTmpdir, useTempRoot } from './temp-root';

const TMP_PREFIX = 'pgferry-test-';
const STATE_KEY = '__pgferryTestHarness';

export interface HarnessState {
  baseDir: string;
  envFile: string;
  postgres: PostgresServerInfo[];
  s3?: S3ChildProcess;
  /** Removes the exit/signal hooks installed by setup. */
  removeHooks(): void;
}

type GlobalWithHarness = typeof globalThis & { [STATE_KEY]?: HarnessState };

export function harnessState(): HarnessState | undefined {
  return (globalThis as GlobalWithHarness)[STATE_KEY];
}

export function clearHarnessState(): void {
  delete (globalThis as GlobalWithHarness)[STATE_KEY];
}

function log(message: string): void {
  process.stderr.write(`[pgferry test harness] ${message}\n`);
}

/** A password with URL/conninfo-special characters, so the product must encode/escape it properly. */
function makePassword(): string {
  return `p@ss:w/rd%#?&=+ '\\${randomBytes(6).toString('hex')}`;
}

/** Synchronously kills every postmaster under `baseDir` (pg<major>/data) and removes `baseDir`. */
function killAndRemoveSync(baseDir: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(baseDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (/^pg\d+$/.test(entry)) killPostgresSync(path.join(baseDir, entry, 'data'));
  }
  try {
    const pid = Number(readFileSync(path.join(baseDir, 's3rver.pid'), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGKILL');
  } catch {
    // not running / already gone
  }
  try {
    rmSync(baseDir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // best effort
  }
}

/** Cleans up after earlier runs that died without teardown (e.g. SIGKILL): their servers still run. */
function cleanStaleRuns(): void {
  const tmp = systemTmpdir();
  let entries: string[] = [];
  try {
    entries = readdirSync(tmp);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.startsWith(TMP_PREFIX)) continue;
    const dir = path.join(tmp, entry);
    try {
      const owner = Number(readFileSync(path.join(dir, 'owner.pid'), 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) {
        log(`removing stale test servers of dead process ${owner} in ${dir}`);
        killAndRemoveSync(dir);
      }
    } catch {
      // not ours / no owner file
    }
  }
}

function installHooks(baseDir: string): () => void {
  const onExit = () => killAndRemoveSync(baseDir);
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (signal: NodeJS.Signals) => {
    killAndRemoveSync(baseDir);
    remove();
    // Re-deliver so the default behaviour (or other handlers) still applies.
    process.kill(process.pid, signal);
  };
  const remove = () => {
    process.removeListener('exit', onExit);
    for (const s of signals) process.removeListener(s, onSignal);
  };
  process.on('exit', onExit);
  for (const s of signals) process.once(s, onSignal);
  return remove;
}

export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const previous = harnessState();
  if (previous) {
    // Setup ran again without teardown in between: start clean.
    await stopAll(previous).catch(() => undefined);
  }
  useTempRoot();
  cleanStaleRuns();
  const majors = resolveMajors();

  // In the system's temporary folder, not the run's: its servers are stopped before that is removed.
  const baseDir = await fs.mkdtemp(path.join(systemTmpdir(), TMP_PREFIX));
  // The postgres OS user must be able to traverse into its pg<major> directories.
  await fs.chmod(baseDir, 0o711);
  await fs.writeFile(path.join(baseDir, 'owner.pid'), `${process.pid}\n`);
  const removeHooks = installHooks(baseDir);
  const envFile = path.join(baseDir, 'env.json');
  const state: HarnessState = { baseDir, envFile, postgres: [], removeHooks };
  (globalThis as GlobalWithHarness)[STATE_KEY] = state;

  const password = makePassword();
  const pgResults = majors.map((major) =>
    startPostgres(major, { parentDir: baseDir, password }).then((info) => {
      state.postgres.push(info);
      return info;
    }),
  );
  const s3Result = startS3({
    directory: path.join(baseDir, 's3'),
    logFile: path.join(baseDir, 's3rver.log'),
  }).then((s3) => {
    state.s3 = s3;
    writeFileSync(path.join(baseDir, 's3rver.pid'), `${s3.pid}\n`);
    return s3;
  });
  const settled = await Promise.allSettled([...pgResults, s3Result]);
  const failures = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (failures.length > 0) {
    await stopAll(state);
    const message = failures.map((f) => (f instanceof Error ? f.message : String(f))).join('\n\n');
    throw new Error(
      `test harness setup failed (${failures.length} of ${settled.length} servers):\n\n${message}`,
    );
  }

  // Keep the order of PGFERRY_TEST_MAJORS.
  state.postgres.sort((a, b) => majors.indexOf(a.major) - majors.indexOf(b.major));
  const s3 = state.s3;
  if (!s3) throw new Error('unreachable: s3 not started');
  const envData: TestEnvFile = {
    baseDir,
    postgres: state.postgres,
    s3: {
      endpoint: s3.info.endpoint,
      bucket: s3.info.bucket,
      accessKeyId: s3.info.accessKeyId,
      secretAccessKey: s3.info.secretAccessKey,
      region: s3.info.region,
    },
  };
  writeFileSync(envFile, `${JSON.stringify(envData, null, 2)}\n`, { mode: 0o600 });
  process.env[ENV_FILE_VAR] = envFile;

  const servers = state.postgres.map((p) => `PostgreSQL ${p.version.split(' ')[0]} on :${p.port}`).join(', ');
  log(`${servers}, S3 at ${s3.info.endpoint}; ready in ${Date.now() - started} ms (${baseDir})`);
}

/** Stops every server in `state`, removes its files and forgets it. Used by teardown and failed setup. */
export async function stopAll(state: HarnessState): Promise<void> {
  const errors: unknown[] = [];
  const results = await Promise.allSettled([
    ...state.postgres.map((p) => stopPostgres(p)),
    state.s3 ? state.s3.close() : Promise.resolve(),
  ]);
  for (const r of results) if (r.status === 'rejected') errors.push(r.reason);
  // Anything pg_ctl could not stop (or servers that were still starting) gets SIGQUIT.
  killAndRemoveSync(state.baseDir);
  state.removeHooks();
  clearHarnessState();
  if (existsSync(state.baseDir)) errors.push(new Error(`could not remove ${state.baseDir}`));
  if (process.env[ENV_FILE_VAR] === state.envFile) delete process.env[ENV_FILE_VAR];
  if (errors.length > 0) {
    throw new Error(
      `test harness teardown: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join('\n')}`,
    );
  }
}
