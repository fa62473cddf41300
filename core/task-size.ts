/**
 * How big a Fargate task a run needs, decided by preflight from what it measured: the sizes are
 * valid Fargate combinations, and the disk holds what the run writes locally.
 */
import type { TaskSize } from './contracts';

const GiB = 1024 ** 3;
/** Fargate's included ephemeral storage, and its maximum. */
const MIN_DISK_GIB = 21;
const MAX_DISK_GIB = 200;

function diskFor(bytes: number): number {
  return Math.min(MAX_DISK_GIB, Math.max(MIN_DISK_GIB, Math.ceil((bytes * 1.2) / GiB) + 5));
}

/**
 * A dump streams to the store (no disk); a second vCPU lets compression run beside pg_dump once
 * the database is big enough for it to matter.
 */
export function dumpTaskSize(databaseBytes: number): TaskSize {
  return databaseBytes < 1 * GiB
    ? { cpu: '1024', memoryMiB: '2048', ephemeralStorageGiB: MIN_DISK_GIB }
    : { cpu: '2048', memoryMiB: '4096', ephemeralStorageGiB: MIN_DISK_GIB };
}

/**
 * A restore downloads the compressed dump from S3 and decompresses it beside it before
 * pg_restore reads it (both at once: up to twice the dump for incompressible data); a verify
 * also holds the restored database in its throwaway server.
 */
export function restoreTaskSize(uncompressedDumpBytes: number, withLocalServer: boolean): TaskSize {
  const disk = diskFor(uncompressedDumpBytes * (withLocalServer ? 3 : 2));
  return uncompressedDumpBytes < 1 * GiB
    ? { cpu: '1024', memoryMiB: '2048', ephemeralStorageGiB: disk }
    : { cpu: '2048', memoryMiB: '8192', ephemeralStorageGiB: disk };
}
