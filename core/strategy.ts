/**
 * How a backup runs, chosen by preflight from the database's size and the cores its task will
 * have, and recorded in the manifest (`strategy`); and whether a restore (or a drill) streams
 * (`restoreStreams`), which its runner does and its preflight sizes its disk by.
 */
import { availableParallelism } from 'node:os';
import type { BackupPlan, DumpStrategy, TaskSize } from './contracts';
import { currentDeployment, type Deployment } from './deployment';
import { PgferryError } from './errors';
import type { UploadOptions } from './store';

const MiB = 1024 * 1024;
/** S3 allows 10,000 parts; stay well below so an underestimated size still fits. */
const TARGET_MAX_PARTS = 8000;
/**
 * S3's minimum part size. The runner holds `queue + 1` part buffers (`core/store/s3-multipart.ts`),
 * so the smallest parts keep its memory lowest (measured: 5 MiB parts ~13 MiB less than 8 MiB
 * ones); parts grow only past 39 GiB of dump.
 */
const MIN_PART_BYTES = 5 * MiB;

/** Multipart part size for an upload of about `expectedBytes` (unknown: assume up to 80 GiB). */
export function partSizeFor(expectedBytes: number | undefined): number {
  const expected = expectedBytes ?? 80 * 1024 * MiB;
  const size = Math.ceil(expected / TARGET_MAX_PARTS / MiB) * MiB;
  return Math.max(MIN_PART_BYTES, size);
}

/**
 * Parts in flight at once. Each holds a part buffer, and one more fills meanwhile, so the runner
 * holds `(queue + 1) × part size` of parts whatever the dump's size. On
 * two cores two parts in flight carry more than the compressed output of one pg_dump (measured
 * with 8 MiB parts: 4 in flight put the runner at 145–176 MiB, 2 at about 130–150 MiB); with four
 * cores or more (a task of 8 GiB or more), four keep a faster dump's uploads going.
 */
export function uploadQueueSize(cores: number): number {
  return cores >= 4 ? 4 : DEFAULT_UPLOAD_QUEUE_SIZE;
}

/** Parts in flight where no plan chose (small objects, or an upload without a strategy). */
export const DEFAULT_UPLOAD_QUEUE_SIZE = 2;

/** About what a dump of a database of `databaseBytes` stores, compressed (measured: 0.45–0.5×). */
export function expectedStoredBytes(databaseBytes: number): number {
  return Math.ceil(databaseBytes / 2);
}

/**
 * A dump stream keeps about two cores busy: the server's COPY backend, pg_dump, and the runner's
 * reading, row counting and SHA-256 on its main thread beside zstd on libuv's pool (measured:
 * docs/benchmark.md, "Scaling with cores"). So a default backup runs one pg_dump per two of the
 * task's cores: one on 1 or 2 (a second stream on two cores added 15–25 % CPU, and its restore
 * goes through sections), two on 4 vCPUs, and at most {@link MAX_DEFAULT_DUMP_JOBS}.
 */
export const CORES_PER_DUMP_JOB = 2;

/**
 * The most pg_dumps a default backup runs: every stream's bytes pass through the runner's one main
 * thread (about a fifth of a core per stream at full speed), which more streams would saturate; a
 * request's `--jobs` may ask for more (up to 64).
 */
export const MAX_DEFAULT_DUMP_JOBS = 4;

/**
 * What each side pg_dump of a default backup carries at least (a plan's `minSideJobBytes`): a
 * stream of its own costs a connection, processes, an object and, at restore, pg_restore runs of
 * its own (tenths of a second); below this a second stream saves less than that.
 */
export const DEFAULT_MIN_SIDE_JOB_BYTES = 256 * MiB;

/**
 * The dump's strategy: `jobs` pg_dumps in custom format in one snapshot (see {@link planDumpJobs}),
 * each streamed through its own compression into the store (directory format was measured on two
 * cores and not adopted: its files would need the same compression and checksums, and a local
 * disk), with upload parts sized to the expected dump and as many in flight as the cores allow.
 * `jobs` is the request's (`--jobs`), else one per {@link CORES_PER_DUMP_JOB} of the task's cores
 * (at most {@link MAX_DEFAULT_DUMP_JOBS}) and at most one per {@link DEFAULT_MIN_SIDE_JOB_BYTES}
 * of the database, each side job then carrying at least that many bytes of tables
 * (`minSideJobBytes`: fewer jobs where the tables do not fill them). On 1 or 2 cores, and below
 * 512 MiB, that is one pg_dump.
 */
export function chooseDumpStrategy(databaseBytes: number, cores: number, jobs?: number): DumpStrategy {
  const byCores = Math.min(MAX_DEFAULT_DUMP_JOBS, Math.floor(cores / CORES_PER_DUMP_JOB));
  const bySize = Math.floor(databaseBytes / DEFAULT_MIN_SIDE_JOB_BYTES);
  const chosen = jobs ?? Math.max(1, Math.min(byCores, bySize));
  return {
    format: 'custom',
    jobs: chosen,
    ...(jobs === undefined && chosen > 1 ? { minSideJobBytes: DEFAULT_MIN_SIDE_JOB_BYTES } : {}),
    upload: {
      partBytes: partSizeFor(expectedStoredBytes(databaseBytes)),
      queueSize: uploadQueueSize(cores),
    },
  };
}

/**
 * A backup's pg_dumps at once within the connections the source accepts (`free`, as
 * `freeConnections` counts them, preflight's own among them): the run holds `jobs` pg_dumps, the
 * session that exports their snapshot and the one that watches for concurrent change. A default
 * takes at most half of what is free, leaving the rest to the database's other clients; a
 * requested `--jobs` that does not fit is refused, naming the numbers.
 */
export function dumpJobsWithin(jobs: number, free: number, requested: boolean): number {
  const besides = 2;
  if (requested) {
    // Preflight's own connection ends before the dump starts.
    if (jobs > 1 && jobs + besides > free + 1) {
      throw new PgferryError(
        'InvalidInput',
        `--jobs ${jobs} needs ${jobs + besides} connections to the source, and it accepts ${free + 1} more now (max_connections, its reserved slots and the role's and database's limits): lower --jobs; nothing was written`,
      );
    }
    return jobs;
  }
  return Math.max(1, Math.min(jobs, Math.floor((free + 1) / 2) - besides));
}

/**
 * Parallel jobs of a restore, verify or migration whose request names none: `PGFERRY_TASK_VCPUS`
 * where set, else this machine's cores.
 */
export function defaultJobs(env: NodeJS.ProcessEnv = process.env): number {
  const vcpus = Number(env.PGFERRY_TASK_VCPUS);
  return Number.isInteger(vcpus) && vcpus > 0 ? vcpus : availableParallelism();
}

/** What a restore asks for that decides whether it streams (a restore request's, its runner's). */
export interface RestoreSelection {
  mode: 'create' | 'clean';
  withGlobals: boolean;
  schemas: readonly string[];
  tables: readonly string[];
}

/**
 * Whether a restore streams the archives (the dump object, and a parallel backup's data-only
 * objects beside it) into the database as they download (containers/pg-tools/src/restore-stream.ts):
 * in create mode (clean mode verifies first, since it changes a database that exists), of every
 * table (a `--schema` or `--table` restore lets pg_restore choose), and without `--with-globals`
 * (the roles, created on the server outside the renamed database, wait for the verified backup;
 * the pre-data needs them; a drill creates them first: {@link DRILL_RESTORE}). An archive with
 * large objects is restored from files all the same.
 */
export function restoreStreams(restore: RestoreSelection): boolean {
  return (
    restore.mode === 'create' &&
    !restore.withGlobals &&
    restore.schemas.length === 0 &&
    restore.tables.length === 0
  );
}

/**
 * What a verification's drill restores (containers/pg-tools/src/verify.ts): the whole backup in
 * create mode. Its roles are created on the throwaway server before the load — nothing else lives
 * there, so they need not wait for the verified backup — and the load itself is without them: it
 * streams as a create restore does.
 */
export const DRILL_RESTORE: RestoreSelection = {
  mode: 'create',
  withGlobals: false,
  schemas: [],
  tables: [],
};

/**
 * The cores the task will run on: the Fargate task's vCPUs on AWS, this machine's when the
 * workflow runs locally (its task is a child process here).
 */
export function taskCores(taskSize: TaskSize, deployment: Deployment = currentDeployment()): number {
  return deployment.onAws ? Number(taskSize.cpu) / 1024 : availableParallelism();
}

/** How the dump of `plan` is uploaded: parts as its strategy chose, else sized by the store. */
export function uploadOptions(plan: Pick<BackupPlan, 'sizeBytes' | 'strategy'>): UploadOptions {
  return {
    expectedBytes: expectedStoredBytes(plan.sizeBytes),
    partBytes: plan.strategy.upload?.partBytes,
    queueSize: plan.strategy.upload?.queueSize,
  };
}

/** A table whose data a parallel dump may move out of the main archive, with its size. */
export interface DumpJobTable {
  schema: string;
  name: string;
  bytes: number;
  /** Its data stays in the main archive whatever its size (no pattern of a side pg_dump names it). */
  kept?: boolean;
}

/**
 * Tables smaller than this stay in the main archive: a pg_dump of its own costs a connection, a
 * process and a stored object, and moves nearly no work.
 */
export const MIN_TABLE_BYTES_OF_ITS_OWN_JOB = 1024 * 1024;

/**
 * Which tables' data each of up to `jobs` pg_dumps carries: the largest first, each to the job with
 * the fewest bytes so far (longest-processing-time first, within 4/3 of the best split). Job 0 is
 * the main archive: it carries the schema and the data of every table not listed in a side job, so
 * it starts with the bytes of the tables too small to move (`keptBytes` and those under
 * {@link MIN_TABLE_BYTES_OF_ITS_OWN_JOB}) or `kept` there. With `minSideJobBytes`, as many jobs as leave every side
 * job at least that many bytes (fewer jobs, down to one, until they do). Returns the side jobs'
 * tables, empty jobs left out.
 */
export function planDumpJobs(
  tables: readonly DumpJobTable[],
  jobs: number,
  keptBytes = 0,
  minSideJobBytes = 0,
): DumpJobTable[][] {
  const stays = (t: DumpJobTable) => t.kept === true || t.bytes < MIN_TABLE_BYTES_OF_ITS_OWN_JOB;
  const movable = tables
    .filter((t) => !stays(t))
    .sort((a, b) => b.bytes - a.bytes || a.schema.localeCompare(b.schema) || a.name.localeCompare(b.name));
  const kept = keptBytes + tables.reduce((sum, t) => sum + (stays(t) ? t.bytes : 0), 0);
  const moved = movable.reduce((sum, t) => sum + t.bytes, 0);
  for (let n = Math.min(jobs, 1 + Math.floor(moved / Math.max(1, minSideJobBytes))); n > 1; n--) {
    const load = Array.from({ length: n }, (_, i) => (i === 0 ? kept : 0));
    const assigned: DumpJobTable[][] = Array.from({ length: n }, () => []);
    for (const table of movable) {
      let least = 0;
      for (let j = 1; j < n; j++) if (load[j] < load[least]) least = j;
      load[least] += table.bytes;
      assigned[least].push(table);
    }
    const sides = assigned.slice(1).filter((group) => group.length > 0);
    if (sides.every((group) => group.reduce((sum, t) => sum + t.bytes, 0) >= minSideJobBytes)) return sides;
  }
  return [];
}
