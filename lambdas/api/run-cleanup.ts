/**
 * A stopped run's cleanup, as the run view shows it on AWS: the announcer, once it has cleaned up
 * after a stopped (or timed-out) execution, writes what that cleanup did and left into the store
 * (`.runs/<run id>/cleanup.json`, core/store-keys.ts `runCleanupKey`); `GET /v1/runs/{id}`
 * (./step-functions-runs.ts) reads it back into the run's `cleanup`. The record is the event's
 * `detail.cleanup`, bounded the same way (api/events.ts `boundedCleanup`).
 */
import { z } from 'zod';
import { boundedCleanup, type RunCleanup } from '../../api/events';
import type { BackupStore } from '../../core/store';
import { runCleanupKey } from '../../core/store-keys';

const RunCleanupSchema = z.object({
  notes: z.array(z.string()),
  left: z.array(z.string()),
  error: z.object({ error: z.string(), cause: z.string() }).optional(),
});

/** The stored record: whose cleanup it is, when it was written, and the cleanup. */
export const RunCleanupRecordSchema = z.object({
  id: z.string(),
  recordedAt: z.string(),
  cleanup: RunCleanupSchema,
});
export type RunCleanupRecord = z.infer<typeof RunCleanupRecordSchema>;

/** Writes what the cleanup of run `id` did and left (bounded), where the run view reads it. */
export async function recordRunCleanup(
  store: Pick<BackupStore, 'putJson'>,
  id: string,
  cleanup: RunCleanup,
  now: Date = new Date(),
): Promise<void> {
  const record: RunCleanupRecord = { id, recordedAt: now.toISOString(), cleanup: boundedCleanup(cleanup) };
  await store.putJson(runCleanupKey(id), record);
}

/**
 * What the cleanup of run `id` did and left, when the announcer has recorded it; undefined when
 * there is no record (not yet, or none was written), the record is not one, or the store could not
 * be read: the run is shown without it rather than not at all (and the announcer, which reads the
 * run before it records the cleanup, still announces it).
 */
export async function readRunCleanup(
  store: Pick<BackupStore, 'getJson'>,
  id: string,
): Promise<RunCleanup | undefined> {
  let stored: unknown;
  try {
    stored = await store.getJson(runCleanupKey(id));
  } catch {
    return undefined;
  }
  const parsed = RunCleanupRecordSchema.safeParse(stored);
  if (!parsed.success || parsed.data.id !== id) return undefined;
  return boundedCleanup(parsed.data.cleanup);
}
