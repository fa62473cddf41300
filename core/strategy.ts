/**
 * How a backup runs, chosen by preflight from the database's size and the cores its task will
 * have, and recorded in the manifest (`strategy`).
 */
import { availableParallelism } from 'node:os';
import type { BackupPlan, DumpStrategy, TaskSize } from './contracts';
import { currentDeployment, type Deployment } from './deployment';
import type { UploadOptions } from './store';

const MiB = 1024 * 1024;
/** S3 allows 10,000 parts; stay well below so an underestimated size still fits. */
const TARGET_MAX_PARTS = 8000;
/**
 * S3's minimum part size. The runner holds about `(queue + 1) × 2` parts, so the smallest parts
 * keep its memory lowest (measured: 5 MiB parts ~13 MiB less than 8 MiB ones); parts grow only
 * past 39 GiB of dump.
 */
const MIN_PART_BYTES = 5 * MiB;

/** Multipart part size for an upload of about `expectedBytes` (unknown: assume up to 80 GiB). */
export function partSizeFor(expectedBytes: number | undefined): number {
  const expected = expectedBytes ?? 80 * 1024 * MiB;
  const size = Math.ceil(expected / TARGET_MAX_PARTS / MiB) * MiB;
  return Math.max(MIN_PART_BYTES, size);
}

/**
 * Parts in flight at once. Each holds a part in memory (twice, while the SDK checksums it), so the
 * runner's memory is about `(queue + 1) × part size` above its base whatever the dump's size. On
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
 * The dump's strategy: one pg_dump in custom format streamed through compression into the store
 * (directory format with parallel jobs was measured on two cores and not adopted: its files would
 * need the same compression and checksums on the same cores), with upload parts sized to the
 * expected dump and as many in flight as the cores allow.
 */
export function chooseDumpStrategy(databaseBytes: number, cores: number): DumpStrategy {
  return {
    format: 'custom',
    jobs: 1,
    upload: {
      partBytes: partSizeFor(expectedStoredBytes(databaseBytes)),
      queueSize: uploadQueueSize(cores),
    },
  };
}

/**
 * Parallel jobs of a restore, verify or migration whose request names none: `PGFERRY_TASK_VCPUS`
 * where set, else this machine's cores.
 */
export function defaultJobs(env: NodeJS.ProcessEnv = process.env): number {
  const vcpus = Number(env.PGFERRY_TASK_VCPUS);
  return Number.isInteger(vcpus) && vcpus > 0 ? vcpus : availableParallelism();
}

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
