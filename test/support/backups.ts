/**
 * Stores filled with synthetic complete backups (a valid manifest and its object), written
 * through pgferry's own store API: for catalog, prune and retention tests that need many backups
 * spread over time, which real dumps cannot provide.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { type BackupManifest, BackupManifestSchema } from '../../core/contracts';
import type { BackupStore } from '../../core/store';
import { backupObjectKey, manifestKey, newBackupId } from '../../core/store-keys';

/** A valid manifest of `database` taken at `startedAt`, describing one small dump object. */
export function syntheticManifest(
  database: string,
  startedAt: Date,
  dump: Buffer,
  durationSeconds = 1.5,
): BackupManifest {
  return BackupManifestSchema.parse({
    schemaVersion: 1,
    id: newBackupId(startedAt),
    database,
    status: 'complete',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date(startedAt.getTime() + durationSeconds * 1000).toISOString(),
    durationSeconds,
    source: { host: '127.0.0.1', port: 5432, user: 'postgres' },
    server: { version: '15.18', major: 15 },
    tool: { pgDumpVersion: '15.18', pgDumpMajor: 15, pgferryVersion: '0.1.0' },
    format: 'custom',
    compression: { codec: 'none' },
    strategy: { format: 'custom', jobs: 1 },
    uncompressedBytes: dump.length,
    objects: [
      {
        key: 'dump.pgdump',
        kind: 'dump',
        bytes: dump.length,
        sha256: createHash('sha256').update(dump).digest('hex'),
        compression: { codec: 'none' },
      },
    ],
    tables: [{ schema: 'public', name: 't', rows: 1 }],
    globals: { rolePasswords: false },
  });
}

/** Writes a complete synthetic backup (its dump object, then its manifest). */
export async function writeSyntheticBackup(
  store: BackupStore,
  database: string,
  startedAt: Date,
  durationSeconds = 1.5,
): Promise<BackupManifest> {
  const dump = randomBytes(64);
  const manifest = syntheticManifest(database, startedAt, dump, durationSeconds);
  await store.upload(backupObjectKey(database, manifest.id, 'dump.pgdump'), Readable.from([dump]));
  await store.putJson(manifestKey(database, manifest.id), manifest);
  return manifest;
}

/** Writes one synthetic backup per time, `concurrency` at a time; returns them in `times`' order. */
export async function writeSyntheticBackups(
  store: BackupStore,
  database: string,
  times: readonly Date[],
  concurrency = 16,
): Promise<BackupManifest[]> {
  const out: BackupManifest[] = new Array(times.length);
  let next = 0;
  const worker = async () => {
    while (next < times.length) {
      const i = next++;
      out[i] = await writeSyntheticBackup(store, database, times[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, times.length) }, worker));
  return out;
}

/** A day's backup at `hour`:00 UTC for each day from `first` to `last` (inclusive). */
export function dailyTimes(first: string, last: string, hour = 2): Date[] {
  const times: Date[] = [];
  for (let t = Date.parse(`${first}T00:00:00Z`); t <= Date.parse(`${last}T00:00:00Z`); t += 86_400_000) {
    times.push(new Date(t + hour * 3_600_000));
  }
  return times;
}
