/**
 * One backup per catalog name at a time (a name is one database of one server, see
 * core/catalog-name.ts; the functions below call it `database`, as the store keys do). Preflight
 * takes the name's lease as its last step; Record (after the manifest) or Cleanup (after a
 * failure) releases it. A second backup under the same name finds the lease held and stops with
 * `BackupRunning` instead of racing the first.
 *
 * The lease is a sequence of numbered generations, `<name>/.lease/<generation>.json`
 * (`leaseKey`), each written once and never changed. Taking the lease means creating the
 * generation after the newest one present (1 when there is none) with the store's
 * create-if-absent (`putJsonIfAbsent`: a hard link locally, `If-None-Match: *` on S3), and only
 * when that newest one is no longer held; older generations are then removed. Releasing removes
 * the run's generation, so a finished run leaves nothing behind. Two runs that find the same
 * newest generation N free (or none) both try to create N + 1, and exactly one can; the other
 * then finds N + 1 held. Creating is the only step that must be atomic — no compare-and-swap, no
 * lock on the lock — so the same code is correct on a folder and on S3, and a crash at any point
 * leaves a lease that can be taken over.
 *
 * A lease is no longer held when it expired (`expiresAt`, by default 13 hours after it was taken:
 * longer than the 12-hour dump timeout), or, when it names a process on this machine (the CLI,
 * which runs preflight in-process), when that process is gone. Leases taken on Lambda name no
 * process and are taken over only after they expire. Expiry is a promise about time, not a
 * lock: a run that outlives its lease may overlap with the run that took it over.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Deployment } from './deployment';
import { PgferryError } from './errors';
import type { BackupStore } from './store';
import { BACKUP_ID_PATTERN, leaseGenerationOf, leaseKey, leasePrefix } from './store-keys';

/** Longer than the backup workflow's 12-hour dump timeout, so a live run never loses its lease. */
export const LEASE_TTL_MS = 13 * 60 * 60 * 1000;

const LeaseOwnerSchema = z
  .object({
    hostname: z.string(),
    pid: z.number().int().positive(),
    /** Linux's boot id: a different one means the machine rebooted since. */
    bootId: z.string().optional(),
    /** The process's start time (Linux clock ticks since boot), which tells a reused pid apart. */
    startTime: z.string().optional(),
  })
  .strict();
export type LeaseOwner = z.infer<typeof LeaseOwnerSchema>;

export const LeaseSchema = z
  .object({
    schemaVersion: z.literal(1),
    database: z.string(),
    generation: z.number().int().min(1),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    takenAt: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
    /** The process holding it, when that process lives as long as the run (the CLI). */
    owner: LeaseOwnerSchema.optional(),
    /** The workflow execution that took it: the same execution taking it again gets it back. */
    executionId: z.string().min(1).optional(),
    /** The lease it took over, and why that one was no longer held. */
    tookOver: z
      .object({ backupId: z.string(), state: z.enum(['expired', 'abandoned', 'unreadable']) })
      .strict()
      .optional(),
  })
  .strict();
export type Lease = z.infer<typeof LeaseSchema>;

/** `held`; `expired`; or `abandoned`: its process is gone. */
export type LeaseState = 'held' | 'expired' | 'abandoned';

/** Whether a lease's process is alive: `undefined` when this machine cannot tell. */
export type ProcessCheck = (owner: LeaseOwner) => boolean | undefined;

export function leaseState(lease: Lease, now: Date, isAlive: ProcessCheck = processIsAlive): LeaseState {
  if (now.getTime() >= Date.parse(lease.expiresAt)) return 'expired';
  if (lease.owner && isAlive(lease.owner) === false) return 'abandoned';
  return 'held';
}

export interface AcquireLeaseOptions {
  now?: Date;
  ttlMs?: number;
  /** The process that holds the lease for the whole run; omit where none does (Lambda). */
  owner?: LeaseOwner;
  /**
   * The workflow execution taking it. A retried preflight (e.g. after a Lambda service error
   * that hid a success) finds the lease held by its own execution and gets that lease back,
   * with the backup id first chosen, instead of being refused until it expires.
   */
  executionId?: string;
  isAlive?: ProcessCheck;
}

const ACQUIRE_ATTEMPTS = 5;

/**
 * Takes `database`'s lease for `backupId`, or fails with `BackupRunning` naming the run that
 * holds it. On success older generations are removed. When the same execution
 * (`options.executionId`) already holds it, returns that lease: its `backupId` is the run's.
 */
export async function acquireLease(
  store: BackupStore,
  database: string,
  backupId: string,
  options: AcquireLeaseOptions = {},
): Promise<Lease> {
  const now = options.now ?? new Date();
  for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
    const generations = await leaseGenerations(store, database);
    let tookOver: Lease['tookOver'];
    if (generations.length > 0) {
      const newest = await readLease(store, database, generations[0]);
      if (newest === 'missing') continue; // removed since the listing: look again
      if (newest === 'unreadable') {
        // A lease is written in one step, so this is not a half-written one; it names no run.
        tookOver = { backupId: 'unknown', state: 'unreadable' };
      } else {
        const state = leaseState(newest, now, options.isAlive);
        if (state === 'held' && options.executionId && newest.executionId === options.executionId) {
          return newest;
        }
        if (state === 'held') throw backupRunning(newest);
        tookOver = { backupId: newest.backupId, state };
      }
    }
    const lease: Lease = {
      schemaVersion: 1,
      database,
      generation: (generations[0] ?? 0) + 1,
      backupId,
      takenAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + (options.ttlMs ?? LEASE_TTL_MS)).toISOString(),
      ...(options.owner ? { owner: options.owner } : {}),
      ...(options.executionId ? { executionId: options.executionId } : {}),
      ...(tookOver ? { tookOver } : {}),
    };
    if (await store.putJsonIfAbsent(leaseKey(database, lease.generation), lease)) {
      for (const generation of generations) {
        await store.deleteObject(leaseKey(database, generation)).catch(() => undefined);
      }
      return lease;
    }
    // Another run created that generation first: look at it.
  }
  throw new PgferryError(
    'BackupRunning',
    `could not take the lease of ${database}: other runs kept taking it; try again`,
  );
}

/**
 * Releases the lease `backupId` holds on `database` by removing it, so a finished run leaves
 * nothing behind; `false` when it holds none (already released, or taken over after it
 * expired). A generation is written once and never changed, so the one read is the one removed.
 */
export async function releaseLease(store: BackupStore, database: string, backupId: string): Promise<boolean> {
  for (const generation of await leaseGenerations(store, database)) {
    const lease = await readLease(store, database, generation);
    if (typeof lease === 'object' && lease.backupId === backupId) {
      await store.deleteObject(leaseKey(database, generation));
      return true;
    }
  }
  return false;
}

/** The newest generation of `database`'s lease, whatever its state; `undefined` when none is held. */
export async function currentLease(store: BackupStore, database: string): Promise<Lease | undefined> {
  const [newest] = await leaseGenerations(store, database);
  if (newest === undefined) return undefined;
  const lease = await readLease(store, database, newest);
  return typeof lease === 'object' ? lease : undefined;
}

/** Generations present, newest first. */
async function leaseGenerations(store: BackupStore, database: string): Promise<number[]> {
  const generations: number[] = [];
  for await (const entry of store.list(leasePrefix(database))) {
    const generation = leaseGenerationOf(entry.key);
    if (generation !== undefined) generations.push(generation);
  }
  return generations.sort((a, b) => b - a);
}

async function readLease(
  store: BackupStore,
  database: string,
  generation: number,
): Promise<Lease | 'missing' | 'unreadable'> {
  let raw: unknown;
  try {
    raw = await store.getJson(leaseKey(database, generation));
  } catch (err) {
    if (err instanceof SyntaxError) return 'unreadable';
    throw err;
  }
  if (raw === undefined) return 'missing';
  const parsed = LeaseSchema.safeParse(raw);
  return parsed.success ? parsed.data : 'unreadable';
}

function backupRunning(lease: Lease): PgferryError {
  const who = lease.owner ? `, pid ${lease.owner.pid} on ${lease.owner.hostname}` : '';
  return new PgferryError(
    'BackupRunning',
    `a backup of ${lease.database} has been running since ${lease.takenAt} (backup ${lease.backupId}${who}); ` +
      `wait for it to finish (its lease expires at ${lease.expiresAt})`,
  );
}

// --- processes ---------------------------------------------------------------------------------

/** This process, as a lease names it. */
export function currentProcessOwner(): LeaseOwner {
  const bootId = readBootId();
  const startTime = processStartTime(process.pid);
  return {
    hostname: hostname(),
    pid: process.pid,
    ...(bootId ? { bootId } : {}),
    ...(startTime ? { startTime } : {}),
  };
}

/**
 * The owner a run's lease should name: this process when it lives as long as the run (locally the
 * CLI runs the whole workflow), none on AWS, where preflight runs in a Lambda sandbox that neither
 * lives as long as the run nor can be checked from another one.
 */
export function leaseOwnerFor(deployment: Deployment): LeaseOwner | undefined {
  return deployment.onAws ? undefined : currentProcessOwner();
}

/**
 * Whether the process a lease names is alive: `undefined` on another machine; `false` when this
 * machine has rebooted since, when no process has that pid, or when the pid now belongs to a
 * process started at another time.
 */
export function processIsAlive(owner: LeaseOwner): boolean | undefined {
  if (owner.hostname !== hostname()) return undefined;
  const bootId = readBootId();
  if (owner.bootId && bootId && owner.bootId !== bootId) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (owner.startTime) {
    const startTime = processStartTime(owner.pid);
    if (startTime !== undefined && startTime !== owner.startTime) return false;
  }
  return true;
}

function readBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces). */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
