/**
 * How big a Fargate task a run needs, decided by preflight from what it measured: the sizes are
 * valid Fargate combinations, and the disk holds what the run writes locally. A restore or a
 * verification that cannot get the disk it needs is refused by preflight, before anything is
 * downloaded (`checkRestoreDisk`).
 */
import { statfs } from 'node:fs/promises';
import type { BackupManifest, Requirements, TaskSize } from './contracts';
import { type Deployment, FARGATE_MAX_DISK_GIB } from './deployment';
import { PgferryError } from './errors';
import { namesUndecodable } from './postgres/server-encodings';
import { type RestoreSelection, restoreStreams } from './strategy';
import { workRoot } from './work-folders';

const GiB = 1024 ** 3;
/** Fargate's included ephemeral storage. */
const MIN_DISK_GIB = 21;
/** What a run's files are allowed beyond the estimate: 20%, plus room for the image and logs. */
const DISK_MARGIN = 1.2;
const DISK_HEADROOM_GIB = 5;

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
 * A backup's task: as {@link dumpTaskSize} up to 10 GiB; from there 4 vCPU / 8 GiB, for its
 * pg_dumps: two by default (one per two cores, `chooseDumpStrategy`), or what a request's
 * `--jobs` asks for. On 1 or 2 vCPUs the default is one pg_dump. Not more: the runner's main
 * thread reads, counts and hashes every stream, and about 4 vCPUs carry the runner at that
 * thread's pace (docs/design.md, "Parallel dumps"). Memory grows with the streams: each holds its
 * upload parts in flight.
 */
export function backupTaskSize(databaseBytes: number): TaskSize {
  return databaseBytes < 10 * GiB
    ? dumpTaskSize(databaseBytes)
    : { cpu: '4096', memoryMiB: '8192', ephemeralStorageGiB: MIN_DISK_GIB };
}

/**
 * What a restore keeps on disk at once: from files, the backup as stored and its dump
 * decompressed; streamed, the definitions file alone.
 */
export interface RestoreDiskUse {
  /** The stored (compressed) objects, downloaded before they are decompressed. */
  storedBytes: number;
  /** The dump decompressed, which pg_restore reads. */
  uncompressedBytes: number;
  /**
   * Set when the restore streams: the main archive's definitions (its header and TOC), the one
   * file it writes; the objects and the dump pass through without touching the disk.
   */
  definitionsBytes?: number;
  /**
   * Why a restore that would stream is restored from files: its archive holds large objects, or
   * its encoding's names are not decoded exactly (SQL_ASCII's; `NotStreamable` in
   * containers/pg-tools/src/restore-stream.ts).
   */
  fromFilesBecause?: string;
}

/**
 * A backup's disk use, from its manifest, for `restore` (absent: from files). A restore that
 * streams (`restoreStreams`; a verification's drill, `DRILL_RESTORE`) writes only the definitions
 * when the manifest says that no archive holds large objects and the database's encoding is one
 * whose names pgferry decodes exactly (UTF8, LATIN1, WIN1252, EUC_JP…; not SQL_ASCII:
 * core/postgres/server-encodings.ts); a manifest that does not say (older ones) is sized for files,
 * as is every other restore.
 */
export function restoreDiskUse(
  manifest: Pick<BackupManifest, 'objects' | 'uncompressedBytes'> & {
    requires?: Pick<Requirements, 'encoding'>;
  },
  restore?: RestoreSelection,
): RestoreDiskUse {
  const files = {
    storedBytes: manifest.objects.reduce((sum, o) => sum + o.bytes, 0),
    uncompressedBytes: manifest.uncompressedBytes,
  };
  if (!restore || !restoreStreams(restore)) return files;
  const archives = manifest.objects.filter((o) => o.kind !== 'globals');
  if (archives.some((o) => o.largeObjects)) {
    return { ...files, fromFilesBecause: 'its large objects are restored from files, not streamed' };
  }
  // The rule the runner streams by (`namesNotExact` in core/postgres/copy-stream.ts), for the encoding.
  const encoding = manifest.requires?.encoding;
  if (namesUndecodable(encoding)) {
    return { ...files, fromFilesBecause: `its ${encoding} archive is restored from files, not streamed` };
  }
  const definitionsBytes = archives.find((o) => o.kind === 'dump')?.definitionsBytes;
  const streamed = definitionsBytes !== undefined && archives.every((o) => o.largeObjects === false);
  return streamed ? { ...files, definitionsBytes } : files;
}

/**
 * Bytes of disk a restore needs: the download and the decompressed dump side by side, or a streamed
 * restore's definitions; a verification also holds the restored database in its throwaway server
 * (estimated as the decompressed dump: its tables, with room for indexes in the margin).
 */
export function restoreDiskBytes(use: RestoreDiskUse, withLocalServer: boolean): number {
  return restoreFilesBytes(use, withLocalServer) * DISK_MARGIN + DISK_HEADROOM_GIB * GiB;
}

/**
 * Bytes a restore (`withLocalServer`: a verification) is refused without: on AWS the task's disk as
 * `restoreTaskSize` sizes it; locally the files with the margin but no headroom, so that a small
 * backup restores from a small /tmp.
 */
export function restoreDiskNeeded(use: RestoreDiskUse, withLocalServer: boolean, onAws: boolean): number {
  return onAws
    ? restoreDiskBytes(use, withLocalServer)
    : restoreFilesBytes(use, withLocalServer) * DISK_MARGIN;
}

/**
 * The download and the decompressed dump, or a streamed restore's definitions (and, for a
 * verification, the restored database).
 */
function restoreFilesBytes(use: RestoreDiskUse, withLocalServer: boolean): number {
  const written = use.definitionsBytes ?? use.storedBytes + use.uncompressedBytes;
  return written + (withLocalServer ? use.uncompressedBytes : 0);
}

/**
 * A restore from files downloads the compressed dump from S3 and decompresses it beside it before
 * pg_restore reads it; a streamed one (a drill's too) writes only the definitions (down to
 * Fargate's included 21 GiB); a verify also holds the restored database in its throwaway server.
 * The disk is what that needs (at most Fargate's 200 GiB: `checkRestoreDisk` refuses more first).
 */
export function restoreTaskSize(use: RestoreDiskUse, withLocalServer: boolean): TaskSize {
  const needed = Math.ceil(restoreDiskBytes(use, withLocalServer) / GiB);
  const disk = Math.min(FARGATE_MAX_DISK_GIB, Math.max(MIN_DISK_GIB, needed));
  return use.uncompressedBytes < 1 * GiB
    ? { cpu: '1024', memoryMiB: '2048', ephemeralStorageGiB: disk }
    : { cpu: '2048', memoryMiB: '8192', ephemeralStorageGiB: disk };
}

/**
 * Bytes of disk the run's task can have: on AWS Fargate's largest ephemeral storage; locally, what
 * is free where the runner works ({@link workRoot}, which refuses a folder that cannot be used).
 */
export async function availableDiskBytes(deployment: Deployment, env: NodeJS.ProcessEnv): Promise<number> {
  if (deployment.onAws) return FARGATE_MAX_DISK_GIB * GiB;
  const dir = workRoot(env);
  try {
    const stats = await statfs(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return Number.POSITIVE_INFINITY; // cannot tell: the runner reports a full disk as it happens
  }
}

/**
 * Refuses a restore (or, `withLocalServer`, a verification) of backup `id` whose files cannot fit
 * the disk its task can have, naming the sizes — before anything is downloaded.
 */
export async function checkRestoreDisk(
  what: { id: string; use: RestoreDiskUse; withLocalServer: boolean },
  deployment: Deployment,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const needed = restoreDiskNeeded(what.use, what.withLocalServer, deployment.onAws);
  const available = await availableDiskBytes(deployment, env);
  if (needed <= available) return;
  const gib = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;
  const { use } = what;
  const parts =
    (use.definitionsBytes === undefined
      ? `${gib(use.storedBytes)} downloaded and ${gib(use.uncompressedBytes)} decompressed`
      : `${gib(use.definitionsBytes)} of the archive's definitions, its data streamed`) +
    (what.withLocalServer
      ? `, and ${gib(use.uncompressedBytes)} restored into the verification's server`
      : '') +
    ', with a margin' +
    (use.fromFilesBecause ? `; ${use.fromFilesBecause}` : '');
  const where = deployment.onAws
    ? `a Fargate task has at most ${FARGATE_MAX_DISK_GIB} GiB: run it with the CLI (without --aws) on a machine with the disk`
    : `${gib(available)} is free in ${workRoot(env)}: free space, or point PGFERRY_WORK_DIR at a larger disk`;
  throw new PgferryError(
    'InvalidInput',
    `backup ${what.id} needs ${gib(needed)} of disk (${parts}): ${where}; nothing was downloaded`,
  );
}
