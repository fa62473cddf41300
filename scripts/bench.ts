/**
 * `npm run bench`: pgferry side by side with the tools people use, on one machine, in one run.
 *
 * Starts a PostgreSQL 15 server (Debian's, as the `postgres` user; `--pg` another major) and an S3-protocol server
 * (s3rver), creates a deterministic database of about `--size-mb` MiB (scripts/support/
 * bench-database.ts), then runs every case `--runs` times, interleaved (run 1 of every case of a
 * group, then run 2, …), so that a change in the machine's load hits all cases alike:
 *
 *   backup         pgferry backup to a folder and to S3 / pg_dump -Fc then an upload / the floor,
 *                  pg_dump -Fc -Z0 > /dev/null / (measured decision) pg_dump -Fd -j<cores> -Z0
 *                  (and the rows each one made the server read from the tables)
 *   restore        pgferry restore / createdb + pg_restore -j1 of the default pg_dump -Fc dump
 *   wide           on the second dataset, "wide" (two very large tables, `--wide-mb` MiB): pgferry
 *                  backup → folder / pg_dump -Fc, pgferry restore / createdb + pg_restore -j1
 *   scaling        on "wide": pgferry backup → folder and restore with pgferry and the server pinned
 *                  to 1 core, then to 2 (taskset)
 *   migrate        pgferry migrate (when the CLI has it) / pgcopydb clone / pg_dump | pg_restore
 *   orchestration  pgferry backup of a tiny database / its runner started directly / the CLI's start
 *   memory         pgferry backup and restore of a database `--scale` times larger, once each
 *   online         pgferry migrate --online / --freeze-source while a writer commits: total time
 *                  and the writer's downtime (its first refused write to the end of the migration)
 *   shapes         on five other shapes, each its own database (scripts/support/bench-shapes.ts:
 *                  thousands of small tables, one narrow table, many indexes, partitions, large
 *                  objects): pgferry backup → folder / pg_dump -Fc, pgferry restore / createdb +
 *                  pg_restore -j1, each restore's row counts, indexes and large objects checked
 *
 * Reports medians, the peak RSS of pgferry's own processes, output sizes and the ratios the
 * targets are stated in, as Markdown and JSON (`--out`, default bench-results/).
 *
 *   npm run bench -- [--quick] [--size-mb N] [--wide-mb N] [--runs N] [--scale N | --no-scale]
 *                    [--only groups] [--shapes list] [--shapes-scale F] [--pg major] [--out dir]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Client } from 'pg';
import { RUNNER_MALLOC_TUNABLES } from '../cli/local-executor';
import {
  type BackupManifest,
  type BackupPlan,
  BackupPlanSchema,
  type RestoreReport,
  SCHEMA_VERSION,
} from '../core/contracts';
import { storeJob } from '../core/jobs';
import { choosePgTool } from '../core/postgres/binaries';
import { LocalStore } from '../core/store';
import { jobKey, newBackupId } from '../core/store-keys';
import { dumpTaskSize } from '../core/task-size';
import { runnerNodeFlags } from '../core/workflows';
import { REPO_ROOT } from '../lib/paths';
import {
  fillBenchDatabase,
  fillWideDatabase,
  rowsFor,
  TINY_DATABASE_SQL,
  wideRowsFor,
} from './support/bench-database';
import { cpuList, pinnedCommand, pinServer, rowsRead, serverCpuSeconds } from './support/bench-server';
import {
  describeShape,
  fillShapeDatabase,
  SHAPE_GOALS,
  SHAPES,
  SHAPES_LARGEST_FIRST,
  type Shape,
  type ShapeCounts,
  type ShapeMedians,
  shapeCounts,
  shapesTable,
  summarizeShape,
} from './support/bench-shapes';
import {
  type Measured,
  measure as measureCommand,
  measureShell as measureScript,
  median,
  shq,
} from './support/measure';
import {
  extraPgBinDirs,
  type PostgresServerInfo,
  startPostgres,
  stopPostgres,
} from './support/postgres-server';
import { type S3ChildProcess, s3ClientConfig, startS3 } from './support/s3-server';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'size-mb': { type: 'string' },
    'wide-mb': { type: 'string' },
    runs: { type: 'string' },
    scale: { type: 'string' },
    'no-scale': { type: 'boolean', default: false },
    only: { type: 'string' },
    shapes: { type: 'string' },
    'shapes-scale': { type: 'string' },
    out: { type: 'string', default: 'bench-results' },
    'work-dir': { type: 'string', default: os.tmpdir() },
    pg: { type: 'string', default: '15' },
  },
});
const QUICK = args.quick;
const SIZE_MIB = Number(args['size-mb'] ?? (QUICK ? 40 : 1000));
/**
 * The "wide" dataset's size: half the default's, as its groups run eight cases per run (the full
 * run stays under ~40 minutes on two cores; docs/benchmark.md, "How to run it").
 */
const WIDE_MIB = Number(args['wide-mb'] ?? (QUICK ? 40 : 500));
const RUNS = Number(args.runs ?? 3);
const SCALE = args['no-scale'] ? 0 : Number(args.scale ?? 4);
const GROUPS = new Set(
  (args.only ?? 'backup,restore,wide,scaling,migrate,orchestration,memory,online,shapes').split(','),
);
/** The shapes group's databases (`--shapes`, all five by default), and their sizes (`--shapes-scale`). */
const SHAPE_LIST = [...new Set(args.shapes?.split(',') ?? SHAPES)] as Shape[];
for (const shape of SHAPE_LIST) {
  if (!SHAPES.includes(shape)) throw new Error(`--shapes: not a shape: ${shape} (of ${SHAPES.join(', ')})`);
}
const SHAPE_COUNTS: ShapeCounts = shapeCounts(Number(args['shapes-scale'] ?? (QUICK ? 0.1 : 1)));
const OUT_DIR = path.resolve(args.out);
/**
 * The server's major (`--pg`, default 15: Debian's). Its binaries are found as the tests find
 * them (scripts/support/postgres-server.ts); the client tools, pgferry's and the baselines', are
 * chosen as pgferry chooses them (`choosePgTool`: the lowest major not older than the server's,
 * among PATH, /usr/lib/postgresql and the fetched ones of scripts/install-pg-clients.sh).
 */
const PG_MAJOR = Number(args.pg);
if (!Number.isInteger(PG_MAJOR) || PG_MAJOR < 10) throw new Error(`--pg: not a PostgreSQL major: ${args.pg}`);
const CORES = os.cpus().length;
const CLI = path.join(REPO_ROOT, 'bin', 'pgferry.js');
const RUNNER = path.join(REPO_ROOT, 'dist', 'containers', 'pg-tools', 'src', 'main.js');
const BUCKET = 'pgferry-bench';
const WIDE_DB = 'bench_wide';

type Group =
  | 'backup'
  | 'restore'
  | 'wide'
  | 'scaling'
  | 'migrate'
  | 'orchestration'
  | 'memory'
  | 'online'
  | 'shapes';

interface CaseResult {
  group: Group;
  name: string;
  command: string;
  /** A pgferry case (its peak RSS is reported), or a baseline. */
  pgferry: boolean;
  seconds: number[];
  runnerPeakRss: number[];
  cliPeakRss: number[];
  /** Rows the server read from the user tables during each run (backup cases). */
  rowsRead: number[];
  /** CPU seconds of each run's processes (the command and all it started), and of the server meanwhile. */
  cpuSeconds: number[];
  serverCpuSeconds: number[];
  outputBytes?: number;
  /** Phase timings of pgferry's own report (restore, migrate), medians over the runs. */
  phases?: Record<string, number>;
  notes: string[];
}

interface Context {
  base: string;
  pg: PostgresServerInfo;
  s3: S3ChildProcess;
  env: NodeJS.ProcessEnv;
  /** The folder of the baselines' client tools (pg_dump, pg_restore, psql): the ones pgferry uses. */
  clientBin: string;
  results: CaseResult[];
  localBackupId?: string;
  defaultDump: string;
  /** The "wide" database's size in bytes, when a group needed it. */
  wideBytes?: number;
  /** The shapes group's databases (each named as its shape) and their sizes in bytes. */
  shapeBytes?: Map<Shape, number>;
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? '—' : `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

function url(ctx: Context, database: string): string {
  return `postgres://postgres@127.0.0.1:${ctx.pg.port}/${database}`;
}

function pgArgs(ctx: Context, database: string): string {
  return `-h 127.0.0.1 -p ${ctx.pg.port} -U postgres -d ${shq(database)} --no-password`;
}

/** `createdb`, or where the client tools have none (the fetched ones), psql's CREATE DATABASE. */
function createdb(ctx: Context, database: string): string {
  const file = path.join(ctx.clientBin, 'createdb');
  const connection = `-h 127.0.0.1 -p ${ctx.pg.port} -U postgres --no-password`;
  return existsSync(file)
    ? `${file} ${connection} ${shq(database)}`
    : `${ctx.clientBin}/psql ${connection} -d postgres -X -q -c ${shq(`CREATE DATABASE "${database}"`)}`;
}

async function sql(ctx: Context, database: string, text: string): Promise<void> {
  const client = await connect(ctx, database);
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function connect(ctx: Context, database: string): Promise<Client> {
  const client = new Client({
    host: '127.0.0.1',
    port: ctx.pg.port,
    user: 'postgres',
    password: ctx.pg.password,
    database,
  });
  await client.connect();
  return client;
}

async function databaseSize(ctx: Context, database: string): Promise<number> {
  const client = await connect(ctx, database);
  try {
    const { rows } = await client.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n');
    return Number(rows[0].n);
  } finally {
    await client.end();
  }
}

async function dropDatabase(ctx: Context, database: string): Promise<void> {
  await sql(ctx, 'postgres', `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
}

/** `fingerprint` and the number of large objects: what a restore of a shape must reproduce. */
async function shapeFingerprint(ctx: Context, database: string): Promise<string> {
  const client = await connect(ctx, database);
  try {
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_largeobject_metadata');
    return `${await fingerprint(ctx, database)} largeObjects=${rows[0].n}`;
  } finally {
    await client.end();
  }
}

/** Row counts per table and the number of indexes and constraints: what a copy must reproduce. */
async function fingerprint(ctx: Context, database: string): Promise<string> {
  const client = await connect(ctx, database);
  try {
    const tables = await client.query<{ t: string }>(
      "SELECT quote_ident(relname) AS t FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1",
    );
    const parts: string[] = [];
    for (const { t } of tables.rows) {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`);
      parts.push(`${t}=${rows[0].n}`);
    }
    const { rows } = await client.query<{ i: string; c: string }>(`
      SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public') AS i,
             (SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace) AS c`);
    return `${parts.join(' ')} indexes=${rows[0].i} constraints=${rows[0].c}`;
  } finally {
    await client.end();
  }
}

function newCase(ctx: Context, group: Group, name: string, command: string, pgferry: boolean): CaseResult {
  const result: CaseResult = {
    group,
    name,
    command,
    pgferry,
    seconds: [],
    runnerPeakRss: [],
    cliPeakRss: [],
    rowsRead: [],
    cpuSeconds: [],
    serverCpuSeconds: [],
    notes: [],
  };
  ctx.results.push(result);
  return result;
}

/** The server whose CPU each measured run reports, once it has started. */
let serverDataDir: string | undefined;

/** A command measured with the CPU the server spent meanwhile (support/measure.ts). */
function measure(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<Measured> {
  const dataDir = serverDataDir;
  return measureCommand(command, args, {
    ...options,
    ...(dataDir ? { otherCpu: () => serverCpuSeconds(dataDir) } : {}),
  });
}

function measureShell(script: string, env?: NodeJS.ProcessEnv): Promise<Measured> {
  const dataDir = serverDataDir;
  return measureScript(script, env, dataDir ? () => serverCpuSeconds(dataDir) : undefined);
}

function record(result: CaseResult, m: Measured): void {
  result.seconds.push(m.seconds);
  if (m.cpuSeconds !== undefined) result.cpuSeconds.push(m.cpuSeconds);
  if (m.otherCpuSeconds !== undefined) result.serverCpuSeconds.push(m.otherCpuSeconds);
  if (m.childPeakRss !== undefined) result.runnerPeakRss.push(m.childPeakRss);
  if (m.rootPeakRss !== undefined && result.pgferry) result.cliPeakRss.push(m.rootPeakRss);
  const cpu =
    m.cpuSeconds === undefined
      ? ''
      : `, CPU ${m.cpuSeconds.toFixed(1)} s${m.otherCpuSeconds === undefined ? '' : ` + server ${m.otherCpuSeconds.toFixed(1)} s`}`;
  log(
    `  ${result.name}: ${m.seconds.toFixed(2)} s${cpu}${m.childPeakRss ? `, runner ${mib(m.childPeakRss)}` : ''}`,
  );
}

function pgferry(argv: string[]): [string, string[]] {
  return [process.execPath, [CLI, ...argv]];
}

function storedBytes(manifest: BackupManifest): number {
  return manifest.objects.reduce((sum, o) => sum + o.bytes, 0);
}

/**
 * Counts the rows the server reads from `database`'s tables (`rowsRead` of support/bench-server.ts): each call adds to
 * `result` the rows read since the previous call, or since this one.
 */
async function rowsCounter(ctx: Context, database: string): Promise<(result: CaseResult) => Promise<void>> {
  const read = async () => {
    const client = await connect(ctx, database);
    try {
      return await rowsRead(client);
    } finally {
      await client.end();
    }
  };
  let mark = await read();
  return async (result) => {
    const now = await read();
    result.rowsRead.push(now - mark);
    mark = now;
  };
}

// --- groups --------------------------------------------------------------------------------------

async function backupGroup(ctx: Context): Promise<void> {
  const localStore = path.join(ctx.base, 'store');
  const s3Store = `s3://${BUCKET}/backups`;
  const rawFile = path.join(ctx.base, 'default.pgdump');
  const dirOut = path.join(ctx.base, 'dirdump');
  const s3 = new S3Client(s3ClientConfig(ctx.s3.info));
  const local = newCase(ctx, 'backup', 'pgferry backup → folder', 'pgferry backup --store <dir>', true);
  const toS3 = newCase(ctx, 'backup', 'pgferry backup → S3', 'pgferry backup --store s3://…', true);
  const dumpFc = newCase(ctx, 'backup', 'pg_dump -Fc > file', 'pg_dump -Fc -f <file>', false);
  const dumpUpload = newCase(
    ctx,
    'backup',
    'pg_dump -Fc, then upload to S3',
    'pg_dump -Fc -f <file> && upload (as aws s3 cp: 8 MiB parts, 10 at a time)',
    false,
  );
  const floor = newCase(
    ctx,
    'backup',
    'pg_dump -Fc -Z0 > /dev/null (floor)',
    'pg_dump -Fc -Z0 > /dev/null',
    false,
  );
  const directory = newCase(
    ctx,
    'backup',
    `pg_dump -Fd -j${CORES} -Z0 (to a local folder)`,
    `pg_dump -Fd -j${CORES} -Z0 -f <dir>`,
    false,
  );
  directory.notes.push(
    'measures whether directory format with parallel jobs would beat the streamed custom format',
  );
  const count = await rowsCounter(ctx, 'bench');
  for (let run = 1; run <= RUNS; run++) {
    log(`backup, run ${run}/${RUNS}`);
    for (const [result, store] of [
      [local, localStore],
      [toS3, s3Store],
    ] as const) {
      const [cmd, argv] = pgferry(['backup', '--source', url(ctx, 'bench'), '--store', store, '--json']);
      const m = await measure(cmd, argv, { env: ctx.env });
      const manifest = JSON.parse(m.stdout) as BackupManifest;
      result.outputBytes = storedBytes(manifest);
      if (result === local) ctx.localBackupId ??= manifest.id;
      record(result, m);
      await count(result);
    }
    const dumped = await measureShell(
      `${ctx.clientBin}/pg_dump ${pgArgs(ctx, 'bench')} -Fc -f ${shq(rawFile)}`,
      ctx.env,
    );
    record(dumpFc, dumped);
    await count(dumpFc);
    dumpFc.outputBytes = statSync(rawFile).size;
    const t0 = process.hrtime.bigint();
    // As `aws s3 cp` uploads: 8 MiB parts, 10 at a time.
    await new Upload({
      client: s3,
      params: { Bucket: BUCKET, Key: `uploads/default-${run}.pgdump`, Body: createReadStream(rawFile) },
      partSize: 8 * 1024 * 1024,
      queueSize: 10,
    }).done();
    const uploadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    record(dumpUpload, { ...dumped, seconds: dumped.seconds + uploadSeconds });
    dumpUpload.outputBytes = dumpFc.outputBytes;
    record(
      floor,
      await measureShell(`${ctx.clientBin}/pg_dump ${pgArgs(ctx, 'bench')} -Fc -Z0 > /dev/null`, ctx.env),
    );
    await count(floor);
    rmSync(dirOut, { recursive: true, force: true });
    record(
      directory,
      await measureShell(
        `${ctx.clientBin}/pg_dump ${pgArgs(ctx, 'bench')} -Fd -j${CORES} -Z0 -f ${shq(dirOut)}`,
        ctx.env,
      ),
    );
    await count(directory);
    directory.outputBytes = Number(execFileSync('du', ['-sb', dirOut], { encoding: 'utf8' }).split('\t')[0]);
    rmSync(dirOut, { recursive: true, force: true });
  }
  ctx.defaultDump = rawFile;
}

/** Phase timings of each run of a pgferry restore or migrate case, by case. */
const casePhases = new Map<CaseResult, Record<string, number[]>>();

/** Checks a restored database before it is dropped, noting on `result` what differs. */
type RestoreCheck = (result: CaseResult, database: string) => Promise<void>;

/**
 * One run of `pgferry restore` of `backupId` from the folder `store` into a new database `target`
 * (checked by `check` when given, then dropped), on the first `cores` CPUs when given.
 */
async function pgferryRestore(
  ctx: Context,
  result: CaseResult,
  store: string,
  backupId: string,
  target: string,
  options: { cores?: number; check?: RestoreCheck } = {},
): Promise<void> {
  const [cmd, argv] = pgferry([
    'restore',
    ...['--store', store, '--backup', backupId, '--target', url(ctx, target), '--json'],
  ]);
  const m = await measure(...pinned(options.cores, cmd, argv), { env: ctx.env });
  record(result, m);
  addPhases(result, (JSON.parse(m.stdout) as RestoreReport).timings);
  await options.check?.(result, target);
  await dropDatabase(ctx, target);
}

/** One run's phase timings (pgferry's own report) added to its case's medians. */
function addPhases(result: CaseResult, timings: Record<string, number>): void {
  const phases = casePhases.get(result) ?? {};
  for (const [phase, seconds] of Object.entries(timings)) {
    phases[phase] = [...(phases[phase] ?? []), seconds];
  }
  casePhases.set(result, phases);
  result.phases = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, median(v)]));
}

/**
 * One run of `createdb` + `pg_restore -j1` of the custom-format `dump` into `target` (checked by
 * `check` when given, then dropped).
 */
async function plainRestore(
  ctx: Context,
  result: CaseResult,
  dump: string,
  target: string,
  check?: RestoreCheck,
): Promise<void> {
  record(
    result,
    await measureShell(
      `${createdb(ctx, target)} && ${ctx.clientBin}/pg_restore ${pgArgs(ctx, target)} -j1 ${shq(dump)}`,
      ctx.env,
    ),
  );
  await check?.(result, target);
  await dropDatabase(ctx, target);
}

/** `command args`, on the first `cores` CPUs when given (`taskset`; children inherit it). */
function pinned(cores: number | undefined, command: string, args: string[]): [string, string[]] {
  return cores === undefined ? [command, args] : pinnedCommand(cores, CORES, command, args);
}

async function restoreGroup(ctx: Context): Promise<void> {
  if (!ctx.localBackupId || !existsSync(ctx.defaultDump)) {
    log('restore: skipped (needs the backup group: --only backup,restore)');
    return;
  }
  const localStore = path.join(ctx.base, 'store');
  const ours = newCase(
    ctx,
    'restore',
    'pgferry restore',
    'pgferry restore --store <dir> --backup <id>',
    true,
  );
  const theirs = newCase(
    ctx,
    'restore',
    'pg_restore -j1 (default dump)',
    'createdb && pg_restore -j1 -d <db> <pg_dump -Fc file>',
    false,
  );
  for (let run = 1; run <= RUNS; run++) {
    log(`restore, run ${run}/${RUNS}`);
    await pgferryRestore(ctx, ours, localStore, ctx.localBackupId, `restored_pgferry_${run}`);
    await plainRestore(ctx, theirs, ctx.defaultDump, `restored_plain_${run}`);
  }
}

/** The four cases of a backup and restore series (`backupRestoreSeries`). */
interface BackupRestoreSeries {
  backup: CaseResult;
  dumpFc: CaseResult;
  ours: CaseResult;
  theirs: CaseResult;
  /** One run of the four cases, in this order. */
  run(run: number): Promise<void>;
  /** Removes the backups and the dump. */
  remove(): void;
}

/**
 * pgferry backup → folder of `database` against `pg_dump -Fc` (with the rows each made the server
 * read), then pgferry restore of the first run's backup against `createdb` + `pg_restore -j1` of
 * the latest dump, each restore checked by `check` when given: the wide and shapes groups' cases,
 * named after `label` (`pgferry restore (wide)`, `pg_restore -j1 (wide dump)`). Create it before
 * anything else reads the database's rows: it counts them from then on.
 */
async function backupRestoreSeries(
  ctx: Context,
  group: Group,
  label: string,
  database: string,
  check?: RestoreCheck,
): Promise<BackupRestoreSeries> {
  const store = path.join(ctx.base, `store-${label}`);
  const dump = path.join(ctx.base, `${label}.pgdump`);
  const backup = newCase(
    ctx,
    group,
    `pgferry backup → folder (${label})`,
    'pgferry backup --store <dir>',
    true,
  );
  const dumpFc = newCase(ctx, group, `pg_dump -Fc > file (${label})`, 'pg_dump -Fc -f <file>', false);
  const ours = newCase(
    ctx,
    group,
    `pgferry restore (${label})`,
    'pgferry restore --store <dir> --backup <id>',
    true,
  );
  const theirs = newCase(
    ctx,
    group,
    `pg_restore -j1 (${label} dump)`,
    'createdb && pg_restore -j1 -d <db> <pg_dump -Fc file>',
    false,
  );
  const count = await rowsCounter(ctx, database);
  let backupId: string | undefined;
  return {
    backup,
    dumpFc,
    ours,
    theirs,
    run: async (run) => {
      const [cmd, argv] = pgferry(['backup', '--source', url(ctx, database), '--store', store, '--json']);
      const m = await measure(cmd, argv, { env: ctx.env });
      const manifest = JSON.parse(m.stdout) as BackupManifest;
      backup.outputBytes = storedBytes(manifest);
      backupId ??= manifest.id;
      record(backup, m);
      await count(backup);
      record(
        dumpFc,
        await measureShell(`${ctx.clientBin}/pg_dump ${pgArgs(ctx, database)} -Fc -f ${shq(dump)}`, ctx.env),
      );
      await count(dumpFc);
      dumpFc.outputBytes = statSync(dump).size;
      await pgferryRestore(ctx, ours, store, backupId, `${label}_restored_pgferry_${run}`, { check });
      await plainRestore(ctx, theirs, dump, `${label}_restored_plain_${run}`, check);
    },
    remove: () => {
      rmSync(store, { recursive: true, force: true });
      rmSync(dump, { force: true });
    },
  };
}

/**
 * The second dataset, where two very large tables hold the bytes: pgferry backup → folder against
 * `pg_dump -Fc` (with the rows each made the server read), then pgferry restore of that backup
 * against `pg_restore -j1` of that dump.
 */
async function wideGroup(ctx: Context): Promise<void> {
  const series = await backupRestoreSeries(ctx, 'wide', 'wide', WIDE_DB);
  for (let run = 1; run <= RUNS; run++) {
    log(`wide, run ${run}/${RUNS}`);
    await series.run(run);
  }
  series.remove();
}

/**
 * Creates the shapes' databases (each named as its shape), two at a time, the largest first, and
 * returns their sizes in bytes, in `SHAPE_LIST`'s order.
 */
async function createShapes(ctx: Context): Promise<Map<Shape, number>> {
  const queue = SHAPES_LARGEST_FIRST.filter((shape) => SHAPE_LIST.includes(shape));
  const bytes = new Map<Shape, number>();
  const worker = async () => {
    for (let shape = queue.shift(); shape; shape = queue.shift()) {
      const t0 = Date.now();
      await sql(ctx, 'postgres', `CREATE DATABASE ${shape}`);
      const client = await connect(ctx, shape);
      try {
        await fillShapeDatabase(client, shape, SHAPE_COUNTS);
      } finally {
        await client.end();
      }
      bytes.set(shape, await databaseSize(ctx, shape));
      log(
        `created database ${shape}: ${mib(bytes.get(shape))} in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
      );
    }
  };
  await Promise.all([worker(), worker()]);
  return new Map(SHAPE_LIST.map((shape) => [shape, bytes.get(shape) as number]));
}

/**
 * The five other shapes (scripts/support/bench-shapes.ts), each its own database, as the wide
 * group measures its one: per run, every shape's four cases in turn. Each restore's row counts per
 * table, indexes, constraints and large objects are compared with its source's.
 */
async function shapesGroup(ctx: Context): Promise<void> {
  const series: BackupRestoreSeries[] = [];
  for (const shape of SHAPE_LIST) {
    // Before the series starts counting the rows read: this reads every row.
    const source = await shapeFingerprint(ctx, shape);
    const check: RestoreCheck = async (result, database) => {
      const copy = await shapeFingerprint(ctx, database);
      if (copy !== source) result.notes.push(`fidelity: ${database} differs: ${copy} (source: ${source})`);
    };
    series.push(await backupRestoreSeries(ctx, 'shapes', shape, shape, check));
  }
  for (let run = 1; run <= RUNS; run++) {
    for (const [i, shape] of SHAPE_LIST.entries()) {
      log(`shapes: ${shape}, run ${run}/${RUNS}`);
      await series[i].run(run);
    }
  }
  for (const s of series) {
    s.remove();
    for (const r of [s.ours, s.theirs]) {
      if (r.seconds.length && !r.notes.some((n) => n.startsWith('fidelity:')))
        r.notes.push('fidelity checks passed');
    }
  }
}

/**
 * 1 core against 2: pgferry backup → folder and pgferry restore of the "wide" database with
 * pgferry's processes (the CLI, its runner, their pg_dump/pg_restore) and the whole server pinned
 * to the first core, then to the first two. pgferry's defaults follow the cores it may use.
 */
async function scalingGroup(ctx: Context): Promise<void> {
  if (CORES < 2) {
    log('scaling: skipped (the machine has one core)');
    return;
  }
  const store = path.join(ctx.base, 'store-scaling');
  const plural = (n: number) => `${n} core${n === 1 ? '' : 's'}`;
  const cases = [1, 2].map((cores) => ({
    cores,
    backup: newCase(
      ctx,
      'scaling',
      `pgferry backup → folder (wide), ${plural(cores)}`,
      `taskset -c ${cpuList(cores, CORES)} pgferry backup --jobs ${cores} --store <dir>, server pinned alike`,
      true,
    ),
    restore: newCase(
      ctx,
      'scaling',
      `pgferry restore (wide), ${plural(cores)}`,
      `taskset -c ${cpuList(cores, CORES)} pgferry restore, server pinned alike`,
      true,
    ),
  }));
  let backupId: string | undefined;
  try {
    for (let run = 1; run <= RUNS; run++) {
      log(`scaling, run ${run}/${RUNS}`);
      for (const { cores, backup } of cases) {
        pinServer(ctx.pg.dataDir, cores, CORES);
        // As many dump jobs as cores (`--jobs` is 1 unless asked: see docs/design.md, "Parallel dumps").
        const [cmd, argv] = pgferry([
          'backup',
          '--source',
          url(ctx, WIDE_DB),
          '--store',
          store,
          '--jobs',
          String(cores),
          '--json',
        ]);
        const m = await measure(...pinned(cores, cmd, argv), { env: ctx.env });
        backupId ??= (JSON.parse(m.stdout) as BackupManifest).id;
        record(backup, m);
      }
      for (const { cores, restore } of cases) {
        pinServer(ctx.pg.dataDir, cores, CORES);
        await pgferryRestore(ctx, restore, store, backupId as string, `scaling_restored_${cores}_${run}`, {
          cores,
        });
      }
    }
  } finally {
    pinServer(ctx.pg.dataDir, CORES, CORES);
    rmSync(store, { recursive: true, force: true });
  }
}

/** Whether the CLI has a command (its help lists it). */
async function pgferryHas(command: string): Promise<boolean> {
  const [cmd, argv] = pgferry(['--help']);
  const { stdout } = await measure(cmd, argv);
  return new RegExp(`^\\s+${command}\\b`, 'm').test(stdout);
}

async function migrateGroup(ctx: Context): Promise<void> {
  const source = await fingerprint(ctx, 'bench');
  const hasMigrate = await pgferryHas('migrate');
  const pgcopydb = existsSync('/usr/bin/pgcopydb') ? '/usr/bin/pgcopydb' : undefined;
  const ours = newCase(
    ctx,
    'migrate',
    'pgferry migrate',
    'pgferry migrate --source … --target … --store <dir>',
    true,
  );
  const copydb = newCase(
    ctx,
    'migrate',
    'pgcopydb clone',
    `createdb && pgcopydb clone --table-jobs ${CORES} --index-jobs ${CORES}`,
    false,
  );
  const piped = newCase(
    ctx,
    'migrate',
    'pg_dump | pg_restore',
    'createdb && pg_dump -Fc -Z0 | pg_restore -d <db>',
    false,
  );
  if (!hasMigrate) {
    log('skipped: pgferry migrate not available');
    ours.notes.push('skipped: pgferry migrate not available');
  }
  if (!pgcopydb) {
    log(
      'skipped: pgcopydb is not installed (npm run bench installs it with apt-get: apt-get install pgcopydb)',
    );
    copydb.notes.push('skipped: pgcopydb not installed');
  }
  const check = async (result: CaseResult, database: string) => {
    const copy = await fingerprint(ctx, database);
    if (copy !== source) result.notes.push(`fidelity: ${database} differs: ${copy} (source: ${source})`);
    await dropDatabase(ctx, database);
  };
  for (let run = 1; run <= RUNS; run++) {
    log(`migrate, run ${run}/${RUNS}`);
    if (hasMigrate) {
      const target = `migrated_pgferry_${run}`;
      const [cmd, argv] = pgferry([
        'migrate',
        ...['--source', url(ctx, 'bench'), '--target', url(ctx, target)],
        ...['--store', path.join(ctx.base, 'migrate-store'), '--json'],
      ]);
      const env = {
        ...ctx.env,
        PGFERRY_SOURCE_PASSWORD: ctx.pg.password,
        PGFERRY_TARGET_PASSWORD: ctx.pg.password,
      };
      const m = await measure(cmd, argv, { env });
      record(ours, m);
      addPhases(ours, (JSON.parse(m.stdout) as { timings: Record<string, number> }).timings);
      await check(ours, target);
    }
    if (pgcopydb) {
      const target = `migrated_pgcopydb_${run}`;
      const dir = path.join(ctx.base, `pgcopydb-${run}`);
      record(
        copydb,
        await measureShell(
          `${createdb(ctx, target)} && ${pgcopydb} clone --source ${shq(url(ctx, 'bench'))} --target ${shq(url(ctx, target))} ` +
            `--dir ${shq(dir)} --table-jobs ${CORES} --index-jobs ${CORES} --no-owner --no-acl >/dev/null 2>>${shq(path.join(ctx.base, 'pgcopydb.log'))}`,
          { ...ctx.env, PATH: `${ctx.clientBin}:${process.env.PATH}` },
        ),
      );
      rmSync(dir, { recursive: true, force: true });
      await check(copydb, target);
    }
    const target = `migrated_piped_${run}`;
    record(
      piped,
      await measureShell(
        `${createdb(ctx, target)} && ${ctx.clientBin}/pg_dump ${pgArgs(ctx, 'bench')} -Fc -Z0 | ${ctx.clientBin}/pg_restore ${pgArgs(ctx, target)}`,
        ctx.env,
      ),
    );
    await check(piped, target);
  }
  for (const r of [ours, copydb, piped])
    if (r.seconds.length && !r.notes.length) r.notes.push('fidelity checks passed');
}

/** The freeze undone (the session's own setting lets it write in the frozen database). */
async function unfreezeBench(ctx: Context): Promise<void> {
  const client = await connect(ctx, 'bench');
  try {
    await client.query('SET default_transaction_read_only = off');
    await client.query('ALTER DATABASE bench RESET default_transaction_read_only');
  } finally {
    await client.end();
  }
}

/**
 * `migrate --online` against `--freeze-source`, each while a writer commits short transactions
 * (an insert and an update) as fast as it can on one connection, reconnecting when refused. The
 * writer's downtime is its first refused write to the migration's end (the report's finishedAt);
 * the report's own `writeDowntimeSeconds` is noted beside it. Runs last: it adds a table to the
 * bench database (dropped after) and leaves the source unfrozen again after each run.
 */
async function onlineGroup(ctx: Context): Promise<void> {
  await sql(
    ctx,
    'bench',
    `CREATE TABLE bench_writes (id bigserial PRIMARY KEY, n bigint NOT NULL DEFAULT 0, at timestamptz NOT NULL DEFAULT now());
     INSERT INTO bench_writes (n) SELECT 0 FROM generate_series(1, 1000)`,
  );
  const modes = [
    {
      flag: '--online',
      result: newCase(ctx, 'online', 'migrate --online under writes', 'pgferry migrate --online', true),
    },
    {
      flag: '--freeze-source',
      result: newCase(
        ctx,
        'online',
        'migrate --freeze-source under writes',
        'pgferry migrate --freeze-source',
        true,
      ),
    },
  ];
  const downtimes = new Map<string, number[]>();
  try {
    for (let run = 1; run <= RUNS; run++) {
      for (const { flag, result } of modes) {
        log(`online: ${flag}, run ${run}/${RUNS}`);
        const target = `migrated_online_${run}`;
        const writer = startWriter(ctx);
        const [cmd, argv] = pgferry([
          'migrate',
          flag,
          '--no-schema-test',
          ...['--source', url(ctx, 'bench'), '--target', url(ctx, target)],
          ...['--store', path.join(ctx.base, 'online-store'), '--json'],
        ]);
        const env = {
          ...ctx.env,
          PGFERRY_SOURCE_PASSWORD: ctx.pg.password,
          PGFERRY_TARGET_PASSWORD: ctx.pg.password,
        };
        let measured: Measured;
        try {
          measured = await measure(cmd, argv, { env });
        } finally {
          await writer.stop();
        }
        record(result, measured);
        try {
          const report = JSON.parse(measured.stdout) as {
            finishedAt: string;
            writeDowntimeSeconds?: number;
            timings?: Record<string, number>;
          };
          const refused = writer.firstRefusal();
          if (refused !== undefined) {
            const list = downtimes.get(flag) ?? [];
            list.push((Date.parse(report.finishedAt) - refused) / 1000);
            downtimes.set(flag, list);
          }
          result.notes.push(
            `run ${run}: report writeDowntimeSeconds ${report.writeDowntimeSeconds?.toFixed(1) ?? '—'}, ` +
              `phases (s) ${['data', 'catchUp', 'cutover', 'total']
                .map((phase) => `${phase} ${report.timings?.[phase]?.toFixed(1) ?? '—'}`)
                .join(', ')}`,
          );
        } catch {
          result.notes.push(`run ${run}: no report (${measured.stderr.slice(0, 200)})`);
        }
        await unfreezeBench(ctx);
        await dropDatabase(ctx, target);
      }
    }
  } finally {
    await unfreezeBench(ctx).catch(() => undefined);
    await sql(ctx, 'bench', 'DROP TABLE IF EXISTS bench_writes').catch(() => undefined);
  }
  for (const { flag, result } of modes) {
    const list = downtimes.get(flag) ?? [];
    if (list.length) result.phases = { writerDowntime: median(list) };
    result.notes.unshift(
      list.length
        ? `writer's downtime (first refused write → end), median ${median(list).toFixed(1)} s`
        : // Both modes end the sessions connected before their freeze: a writer never refused is a fault.
          'the writer was never refused: check that the freeze ended its session',
    );
  }
}

/** A writer committing an insert and an update per transaction until stopped; it notes its first refusal. */
function startWriter(ctx: Context): { stop: () => Promise<void>; firstRefusal: () => number | undefined } {
  let writing = true;
  let refused: number | undefined;
  const done = (async () => {
    let client: Client | undefined;
    for (let i = 0; writing; i++) {
      try {
        if (!client) {
          client = await connect(ctx, 'bench');
          client.on('error', () => undefined);
        }
        await client.query('BEGIN');
        await client.query('INSERT INTO bench_writes (n) VALUES ($1)', [i]);
        await client.query('UPDATE bench_writes SET n = n + 1, at = now() WHERE id = $1', [1 + (i % 1000)]);
        await client.query('COMMIT');
      } catch {
        refused ??= Date.now();
        await client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    await client?.end().catch(() => undefined);
  })();
  return {
    stop: async () => {
      writing = false;
      await done;
    },
    firstRefusal: () => refused,
  };
}

async function orchestrationGroup(ctx: Context): Promise<void> {
  const workflow = newCase(
    ctx,
    'orchestration',
    'pgferry backup (tiny database)',
    'pgferry backup (the workflow)',
    true,
  );
  const direct = newCase(
    ctx,
    'orchestration',
    'runner started directly',
    'PGFERRY_ACTION=dump node main.js',
    true,
  );
  const startup = newCase(ctx, 'orchestration', 'pgferry --version', 'CLI start-up', true);
  const size = await databaseSize(ctx, 'bench_tiny');
  for (let run = 1; run <= RUNS; run++) {
    log(`orchestration, run ${run}/${RUNS}`);
    const [cmd, argv] = pgferry([
      'backup',
      '--source',
      url(ctx, 'bench_tiny'),
      '--store',
      path.join(ctx.base, 'tiny'),
    ]);
    record(workflow, await measure(cmd, argv, { env: ctx.env }));
    const store = new LocalStore(path.join(ctx.base, 'tiny-direct'));
    const plan: BackupPlan = BackupPlanSchema.parse({
      schemaVersion: SCHEMA_VERSION,
      backupId: newBackupId(),
      database: 'bench_tiny',
      store: store.url,
      source: {
        host: '127.0.0.1',
        port: ctx.pg.port,
        database: 'bench_tiny',
        user: 'postgres',
        sslmode: 'prefer',
      },
      compression: { codec: 'zstd', level: 1 },
      withRolePasswords: false,
      server: { version: ctx.pg.version, major: PG_MAJOR },
      minPgDumpMajor: PG_MAJOR,
      sizeBytes: size,
      strategy: { format: 'custom', jobs: 1 },
      taskSize: dumpTaskSize(size),
      startedAt: new Date().toISOString(),
    });
    // The job by reference, as the backup workflow's preflight stores it.
    const job = await storeJob(
      store,
      jobKey('backup', plan.database, plan.backupId, plan.backupId),
      'backup',
      plan,
    );
    const m = await measure(process.execPath, [...runnerNodeFlags('dump'), RUNNER], {
      env: {
        ...ctx.env,
        GLIBC_TUNABLES: RUNNER_MALLOC_TUNABLES,
        PGFERRY_ACTION: 'dump',
        PGFERRY_JOB_STORE: job.store,
        PGFERRY_JOB_KEY: job.key,
        PGFERRY_SOURCE_PASSWORD: ctx.pg.password,
      },
    });
    // The runner is the root process here: report it as the runner.
    record(direct, { ...m, childPeakRss: m.rootPeakRss, rootPeakRss: undefined });
    const [vcmd, vargv] = pgferry(['--version']);
    record(startup, await measure(vcmd, vargv));
  }
}

async function memoryGroup(ctx: Context): Promise<void> {
  const sizeMiB = SIZE_MIB * SCALE;
  log(`memory: creating a ${SCALE}× database (about ${sizeMiB} MiB)`);
  const t0 = Date.now();
  await sql(ctx, 'postgres', 'CREATE DATABASE bench_scaled');
  await fillBenchDatabase(() => connect(ctx, 'bench_scaled'), sizeMiB);
  const bytes = await databaseSize(ctx, 'bench_scaled');
  log(`memory: bench_scaled is ${mib(bytes)} (created in ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const store = path.join(ctx.base, 'store-scaled');
  const backup = newCase(
    ctx,
    'memory',
    `pgferry backup → folder, ${SCALE}× database`,
    'pgferry backup',
    true,
  );
  const [cmd, argv] = pgferry(['backup', '--source', url(ctx, 'bench_scaled'), '--store', store, '--json']);
  const m = await measure(cmd, argv, { env: ctx.env });
  record(backup, m);
  const manifest = JSON.parse(m.stdout) as BackupManifest;
  backup.outputBytes = storedBytes(manifest);
  backup.notes.push(`database ${mib(bytes)}`);
  const toS3 = newCase(ctx, 'memory', `pgferry backup → S3, ${SCALE}× database`, 'pgferry backup', true);
  const [scmd, sargv] = pgferry([
    'backup',
    '--source',
    url(ctx, 'bench_scaled'),
    '--store',
    `s3://${BUCKET}/scaled`,
  ]);
  record(toS3, await measure(scmd, sargv, { env: ctx.env }));
  await dropDatabase(ctx, 'bench_scaled');
  const restore = newCase(ctx, 'memory', `pgferry restore, ${SCALE}× database`, 'pgferry restore', true);
  const [rcmd, rargv] = pgferry([
    'restore',
    ...['--store', store, '--backup', manifest.id, '--target', url(ctx, 'bench_scaled_restored'), '--json'],
  ]);
  record(restore, await measure(rcmd, rargv, { env: ctx.env }));
  await dropDatabase(ctx, 'bench_scaled_restored');
  rmSync(store, { recursive: true, force: true });
}

// --- report --------------------------------------------------------------------------------------

interface Target {
  target: string;
  goal: string;
  measured: string;
  met: boolean | undefined;
}

function find(ctx: Context, name: string): CaseResult | undefined {
  const r = ctx.results.find((c) => c.name === name);
  return r?.seconds.length ? r : undefined;
}

function med(r: CaseResult | undefined): number | undefined {
  return r ? median(r.seconds) : undefined;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a / b;
}

function targets(ctx: Context): Target[] {
  const out: Target[] = [];
  const add = (
    target: string,
    goal: string,
    value: number | undefined,
    unit: string,
    met: (v: number) => boolean,
  ) =>
    out.push({
      target,
      goal,
      measured: value === undefined ? 'not measured' : `${value.toFixed(2)}${unit}`,
      met: value === undefined ? undefined : met(value),
    });
  const local = find(ctx, 'pgferry backup → folder');
  const toS3 = find(ctx, 'pgferry backup → S3');
  const dumpUpload = find(ctx, 'pg_dump -Fc, then upload to S3');
  const floor = find(ctx, 'pg_dump -Fc -Z0 > /dev/null (floor)');
  const fc = find(ctx, 'pg_dump -Fc > file');
  add(
    'backup → S3 vs pg_dump -Fc + upload',
    '≥ 3× faster',
    ratio(med(dumpUpload), med(toS3)),
    '×',
    (v) => v >= 3,
  );
  add('backup → folder vs pg_dump -Fc', '≥ 3× faster', ratio(med(fc), med(local)), '×', (v) => v >= 3);
  add(
    'backup → folder vs pg_dump -Fc, wide',
    '≥ 3× faster',
    ratio(med(find(ctx, 'pg_dump -Fc > file (wide)')), med(find(ctx, 'pgferry backup → folder (wide)'))),
    '×',
    (v) => v >= 3,
  );
  add(
    'backup → folder vs pg_dump -Fc -Z0 > /dev/null',
    '≤ 1.2× the floor',
    ratio(med(local), med(floor)),
    '×',
    (v) => v <= 1.2,
  );
  add(
    'backup → S3 vs pg_dump -Fc -Z0 > /dev/null',
    '≤ 1.2× the floor',
    ratio(med(toS3), med(floor)),
    '×',
    (v) => v <= 1.2,
  );
  add(
    'backup size vs pg_dump -Fc',
    '≤ 1×',
    local?.outputBytes && fc?.outputBytes ? local.outputBytes / fc.outputBytes : undefined,
    '×',
    (v) => v <= 1,
  );
  add(
    'restore vs pg_restore -j1',
    '≥ 1.5× faster',
    ratio(med(find(ctx, 'pg_restore -j1 (default dump)')), med(find(ctx, 'pgferry restore'))),
    '×',
    (v) => v >= 1.5,
  );
  add(
    'restore vs pg_restore -j1, wide',
    '≥ 1.5× faster',
    ratio(med(find(ctx, 'pg_restore -j1 (wide dump)')), med(find(ctx, 'pgferry restore (wide)'))),
    '×',
    (v) => v >= 1.5,
  );
  const rows = (name: string) => {
    const r = find(ctx, name);
    return r?.rowsRead.length ? median(r.rowsRead) : undefined;
  };
  add(
    'rows read by backup vs pg_dump -Fc -Z0',
    '≤ 1.05×',
    ratio(rows('pgferry backup → folder'), rows('pg_dump -Fc -Z0 > /dev/null (floor)')),
    '×',
    (v) => v <= 1.05,
  );
  add(
    'rows read by backup vs pg_dump -Fc, wide',
    '≤ 1.05×',
    ratio(rows('pgferry backup → folder (wide)'), rows('pg_dump -Fc > file (wide)')),
    '×',
    (v) => v <= 1.05,
  );
  for (const what of ['backup → folder', 'restore']) {
    add(
      `${what}, 1 core → 2 cores (wide)`,
      '≥ 1.7× faster',
      ratio(
        med(find(ctx, `pgferry ${what} (wide), 1 core`)),
        med(find(ctx, `pgferry ${what} (wide), 2 cores`)),
      ),
      '×',
      (v) => v >= 1.7,
    );
  }
  const migrate = find(ctx, 'pgferry migrate');
  add(
    'migrate vs pgcopydb clone',
    '≤ 1× its time, fidelity checks passing',
    ratio(med(migrate), med(find(ctx, 'pgcopydb clone'))),
    '×',
    (v) => v <= 1 && (migrate?.notes.every((n) => !n.startsWith('fidelity:')) ?? false),
  );
  const workflow = med(find(ctx, 'pgferry backup (tiny database)'));
  const direct = med(find(ctx, 'runner started directly'));
  add(
    'orchestration overhead per workflow',
    '< 1 s',
    workflow !== undefined && direct !== undefined ? workflow - direct : undefined,
    ' s',
    (v) => v < 1,
  );
  const peak = (group: Group) =>
    ctx.results
      .filter((r) => r.group === group && r.pgferry && r.runnerPeakRss.length)
      .reduce<number | undefined>((m, r) => Math.max(m ?? 0, ...r.runnerPeakRss), undefined);
  const mb = (b: number | undefined) => (b === undefined ? undefined : b / 1024 / 1024);
  add(
    'runner peak RSS, 1× database',
    '< 150 MiB',
    mb(peakOf(ctx, ['backup', 'restore', 'wide', 'scaling'])),
    ' MiB',
    (v) => v < 150,
  );
  add(`runner peak RSS, ${SCALE}× database`, '< 150 MiB', mb(peak('memory')), ' MiB', (v) => v < 150);
  return out;
}

/** A case's CPU seconds: its processes' and the server's meanwhile (medians of its runs). */
function caseCpu(r: CaseResult): number {
  return median(r.cpuSeconds) + median(r.serverCpuSeconds);
}

/**
 * What the machine's cores allow a speed target, from the CPU seconds measured in this run (every
 * process of the command and the server's, medians): the baseline's own CPU seconds against what
 * `CORES` cores give in the time the goal allows, and the best ratio pgferry's CPU seconds could
 * give if they were spread over every core from the first second to the last. A goal past that
 * ceiling needs less CPU spent, not better scheduling.
 */
function coreBudget(ctx: Context): string[] {
  const lines: string[] = [];
  // [what, pgferry's case, the baseline's, the goal: pgferry `goal`× faster, or at most `goal`× its time]
  const cases: [string, string, string, { faster: number } | { time: number }][] = [
    ['restore', 'pgferry restore', 'pg_restore -j1 (default dump)', { faster: 1.5 }],
    ['restore, wide', 'pgferry restore (wide)', 'pg_restore -j1 (wide dump)', { faster: 1.5 }],
    ['migrate', 'pgferry migrate', 'pgcopydb clone', { time: 1 }],
    ...SHAPE_LIST.map((shape): [string, string, string, { faster: number }] => [
      `restore, ${shape}`,
      `pgferry restore (${shape})`,
      `pg_restore -j1 (${shape} dump)`,
      { faster: SHAPE_GOALS.restore },
    ]),
  ];
  for (const [what, oursName, baseName, goal] of cases) {
    const ours = find(ctx, oursName);
    const base = find(ctx, baseName);
    if (!ours?.cpuSeconds.length || !ours.serverCpuSeconds.length) continue;
    if (!base?.cpuSeconds.length || !base.serverCpuSeconds.length) continue;
    const baseWall = median(base.seconds);
    const oursWall = median(ours.seconds);
    const goalWall = 'faster' in goal ? baseWall / goal.faster : baseWall * goal.time;
    const packed = caseCpu(ours) / CORES;
    const cores = (r: CaseResult, wall: number) =>
      `${caseCpu(r).toFixed(1)} CPU s in ${wall.toFixed(1)} s (${(caseCpu(r) / wall).toFixed(2)} cores)`;
    lines.push(
      `| ${what} | ${baseName.replace(/ \(.*\)$/, '')}: ${cores(base, baseWall)} | ` +
        `${'faster' in goal ? `${goal.faster}× faster` : `≤ ${goal.time}× its time`}: ${goalWall.toFixed(1)} s, ` +
        `${(CORES * goalWall).toFixed(1)} CPU s on ${CORES} cores | ${cores(ours, oursWall)} | ` +
        `${packed.toFixed(1)} s: ${('faster' in goal ? baseWall / packed : packed / baseWall).toFixed(2)}${'faster' in goal ? '× faster' : '× its time'} |`,
    );
  }
  return lines.length
    ? [
        '',
        `What ${CORES} cores allow. CPU s: the command's processes and the server's, medians of this run. ` +
          "pgferry's ceiling: its CPU seconds spread over every core from the first second to the last; " +
          'a goal past it needs less CPU spent, not better scheduling.',
        '',
        "| comparison | the baseline | the goal | pgferry | pgferry's ceiling |",
        '|---|---|---|---|---|',
        ...lines,
      ]
    : [];
}

/** The shapes group's medians, per shape: what `shapesTable` and the JSON report give. */
function shapeMedians(ctx: Context): ShapeMedians[] {
  return [...(ctx.shapeBytes ?? [])].map(([shape, bytes]) => {
    const restore = find(ctx, `pgferry restore (${shape})`);
    return {
      shape,
      bytes,
      backup: med(find(ctx, `pgferry backup → folder (${shape})`)),
      dump: med(find(ctx, `pg_dump -Fc > file (${shape})`)),
      restore: med(restore),
      pgRestore: med(find(ctx, `pg_restore -j1 (${shape} dump)`)),
      restoreCpu:
        restore?.cpuSeconds.length && restore.serverCpuSeconds.length ? caseCpu(restore) : undefined,
    };
  });
}

function peakOf(ctx: Context, groups: Group[]): number | undefined {
  const values = ctx.results
    .filter((r) => groups.includes(r.group) && r.pgferry)
    .flatMap((r) => r.runnerPeakRss);
  return values.length ? Math.max(...values) : undefined;
}

function machine(pg: PostgresServerInfo, clientBin: string): Record<string, string> {
  const tool = (file: string) => {
    try {
      return execFileSync(file, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .trim()
        .split('\n')[0];
    } catch {
      return 'not installed';
    }
  };
  const debian = existsSync('/etc/debian_version')
    ? `Debian ${readFileSync('/etc/debian_version', 'utf8').trim()}`
    : os.type();
  return {
    cpu: `${CORES} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB`,
    os: `${debian}, Linux ${os.release()}`,
    node: process.version,
    server: `PostgreSQL ${pg.version} (fsync off, as in the tests)`,
    pgDump: tool(`${clientBin}/pg_dump`),
    pgcopydb: tool('/usr/bin/pgcopydb').replace(/^.*?(\d+\.\d+).*$/s, 'pgcopydb $1'),
    zstd: tool('zstd').replace(/^.*?(v\d+\.\d+\.\d+).*$/s, 'zstd $1'),
  };
}

function markdown(
  ctx: Context,
  info: Record<string, string>,
  dbBytes: number | undefined,
  started: Date,
): string {
  const lines: string[] = [];
  lines.push(`# pgferry benchmark, ${started.toISOString()}`, '');
  lines.push(
    dbBytes === undefined
      ? `${RUNS} interleaved runs per case, medians.`
      : `Database: ${mib(dbBytes)} (\`pg_database_size\`; ${Object.entries(rowsFor(SIZE_MIB))
          .map(([t, n]) => `${t} ${n.toLocaleString('en')}`)
          .join(', ')} rows), ${RUNS} interleaved runs per case, medians.`,
    '',
  );
  lines.push(
    ...(ctx.wideBytes === undefined
      ? []
      : [
          `Wide database: ${mib(ctx.wideBytes)} (${Object.entries(wideRowsFor(WIDE_MIB))
            .map(([t, n]) => `${t} ${n.toLocaleString('en')}`)
            .join(', ')} rows): the wide and scaling groups.`,
          '',
        ]),
    ...(ctx.shapeBytes === undefined
      ? []
      : [
          `Shapes (the shapes group, each its own database): ${[...ctx.shapeBytes]
            .map(([shape, bytes]) => `\`${shape}\` ${mib(bytes)}, ${describeShape(shape, SHAPE_COUNTS)}`)
            .join('; ')}.`,
          '',
        ]),
    `Machine: ${Object.entries(info)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}.`,
    '',
  );
  lines.push(
    '| group | case | median s | runs, s | CPU s (its processes / server) | runner peak RSS | CLI peak RSS | output | notes |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of ctx.results) {
    const runs = r.seconds.map((s) => s.toFixed(1)).join(', ');
    const maxOf = (v: number[]) => (v.length ? mib(Math.max(...v)) : '—');
    const notes = [
      ...(r.rowsRead.length ? [`rows read ${median(r.rowsRead).toLocaleString('en')}`] : []),
      ...r.notes,
    ];
    const cpu = r.cpuSeconds.length
      ? `${median(r.cpuSeconds).toFixed(1)} / ${r.serverCpuSeconds.length ? median(r.serverCpuSeconds).toFixed(1) : '—'}`
      : '—';
    lines.push(
      `| ${r.group} | ${r.name.replace(/\|/g, '\\|')} | ${r.seconds.length ? median(r.seconds).toFixed(2) : '—'} | ${runs || '—'} | ${cpu} | ${maxOf(
        r.runnerPeakRss,
      )} | ${maxOf(r.cliPeakRss)} | ${r.outputBytes !== undefined ? mib(r.outputBytes) : '—'} | ${notes.join('; ')} |`,
    );
  }
  lines.push('', '| target | goal | measured | met |', '|---|---|---|---|');
  for (const t of targets(ctx)) {
    lines.push(
      `| ${t.target} | ${t.goal} | ${t.measured} | ${t.met === undefined ? '—' : t.met ? 'yes' : 'no'} |`,
    );
  }
  if (ctx.shapeBytes) {
    lines.push(
      '',
      "Shapes: medians; a speed-up is the peer's time over pgferry's; the ceiling is the restore's, as in the next table.",
      '',
      ...shapesTable(shapeMedians(ctx), CORES),
    );
  }
  lines.push(...coreBudget(ctx));
  for (const name of [
    'pgferry restore',
    'pgferry restore (wide)',
    'pgferry migrate',
    ...SHAPE_LIST.map((shape) => `pgferry restore (${shape})`),
  ]) {
    const found = find(ctx, name);
    if (!found?.phases) continue;
    lines.push(
      '',
      `${name} phases (medians, s): ${Object.entries(found.phases)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`)
        .join(', ')}.`,
    );
  }
  return `${lines.join('\n')}\n`;
}

// --- main ----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const base = await mkdtemp(path.join(args['work-dir'], 'pgferry-bench-'));
  // The server runs as the postgres user, which must reach its folder inside.
  await chmod(base, 0o755);
  let pg: PostgresServerInfo | undefined;
  let s3: S3ChildProcess | undefined;
  const stop = async () => {
    await s3?.close().catch(() => undefined);
    if (pg) await stopPostgres(pg).catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping the servers`);
      void stop().finally(() => process.exit(130));
    });
  }
  try {
    const password = randomBytes(12).toString('hex');
    [pg, s3] = await Promise.all([
      startPostgres(PG_MAJOR, {
        parentDir: base,
        password,
        // The online group needs logical decoding; the others run with the server's default.
        settings: { max_wal_size: '4GB', ...(GROUPS.has('online') ? { wal_level: 'logical' } : {}) },
      }),
      startS3({ directory: path.join(base, 's3'), logFile: path.join(base, 's3.log'), bucket: BUCKET }),
    ]);
    serverDataDir = pg.dataDir;
    // pgferry searches these folders too: the fetched client tools of a newer major (--pg 17).
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PGFERRY_PG_BIN_DIRS: [process.env.PGFERRY_PG_BIN_DIRS, ...extraPgBinDirs()].filter(Boolean).join(':'),
    };
    const pgDump = await choosePgTool('pg_dump', PG_MAJOR, pg.version, env);
    const ctx: Context = {
      base,
      pg,
      s3,
      results: [],
      defaultDump: path.join(base, 'default.pgdump'),
      clientBin: path.dirname(pgDump.path),
      env: {
        ...env,
        PGPASSWORD: password,
        AWS_ENDPOINT_URL_S3: s3.info.endpoint,
        AWS_ACCESS_KEY_ID: s3.info.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.info.secretAccessKey,
        AWS_REGION: s3.info.region,
        PGFERRY_WORK_DIR: base,
      },
    };
    log(`PostgreSQL ${pg.version} on port ${pg.port}, s3rver at ${s3.info.endpoint}, work dir ${base}`);
    let t0 = Date.now();
    let dbBytes: number | undefined;
    // The default database, where a group reads it (the others have databases of their own).
    if (['backup', 'restore', 'migrate', 'online'].some((g) => GROUPS.has(g))) {
      await sql(ctx, 'postgres', 'CREATE DATABASE bench');
      await fillBenchDatabase(() => connect(ctx, 'bench'), SIZE_MIB);
      dbBytes = await databaseSize(ctx, 'bench');
      log(`created database bench: ${mib(dbBytes)} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
    await sql(ctx, 'postgres', 'CREATE DATABASE bench_tiny');
    await sql(ctx, 'bench_tiny', TINY_DATABASE_SQL);
    if (WIDE_MIB > 0 && (GROUPS.has('wide') || GROUPS.has('scaling'))) {
      t0 = Date.now();
      await sql(ctx, 'postgres', `CREATE DATABASE ${WIDE_DB}`);
      await fillWideDatabase(() => connect(ctx, WIDE_DB), WIDE_MIB);
      ctx.wideBytes = await databaseSize(ctx, WIDE_DB);
      log(`created database ${WIDE_DB}: ${mib(ctx.wideBytes)} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
    if (GROUPS.has('shapes')) ctx.shapeBytes = await createShapes(ctx);

    t0 = Date.now();
    if (GROUPS.has('backup')) await backupGroup(ctx);
    if (GROUPS.has('restore')) await restoreGroup(ctx);
    if (ctx.wideBytes !== undefined && GROUPS.has('wide')) await wideGroup(ctx);
    if (ctx.wideBytes !== undefined && GROUPS.has('scaling')) await scalingGroup(ctx);
    if (GROUPS.has('migrate')) await migrateGroup(ctx);
    if (GROUPS.has('orchestration')) await orchestrationGroup(ctx);
    if (GROUPS.has('memory') && SCALE > 0) await memoryGroup(ctx);
    if (GROUPS.has('online')) await onlineGroup(ctx);
    if (GROUPS.has('shapes')) await shapesGroup(ctx);
    log(`cases done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    const info = machine(pg, ctx.clientBin);
    const md = markdown(ctx, info, dbBytes, started);
    mkdirSync(OUT_DIR, { recursive: true });
    const stamp = started.toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
    const json = {
      startedAt: started.toISOString(),
      options: {
        quick: QUICK,
        sizeMiB: SIZE_MIB,
        wideMiB: WIDE_MIB,
        runs: RUNS,
        scale: SCALE,
        groups: [...GROUPS],
        ...(GROUPS.has('shapes') ? { shapes: SHAPE_LIST, shapeCounts: SHAPE_COUNTS } : {}),
      },
      machine: info,
      database: dbBytes === undefined ? null : { bytes: dbBytes, rows: rowsFor(SIZE_MIB) },
      wideDatabase:
        ctx.wideBytes === undefined ? null : { bytes: ctx.wideBytes, rows: wideRowsFor(WIDE_MIB) },
      cases: ctx.results.map((r) => ({ ...r, medianSeconds: r.seconds.length ? median(r.seconds) : null })),
      targets: targets(ctx),
      ...(ctx.shapeBytes
        ? {
            shapes: shapeMedians(ctx).map((m) => ({
              ...m,
              ...summarizeShape(m, CORES),
              restorePhases: find(ctx, `pgferry restore (${m.shape})`)?.phases ?? null,
            })),
          }
        : {}),
    };
    for (const name of [`bench-${stamp}`, 'latest']) {
      writeFileSync(path.join(OUT_DIR, `${name}.md`), md);
      writeFileSync(path.join(OUT_DIR, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
    }
    process.stdout.write(`\n${md}\nWritten to ${path.join(OUT_DIR, `bench-${stamp}.{md,json}`)}\n`);
  } finally {
    await stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
