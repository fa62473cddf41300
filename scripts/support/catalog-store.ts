/**
 * A store of many complete backups, as the catalog benchmark (scripts/bench-catalog.ts) and the
 * web console's tests (test/e2e/console.test.ts: first paint over 2,000 backups) use it: valid
 * manifests of a few dozen tables and a small dump object each, one an hour from 2024-01-01,
 * spread over four catalog names (`db0` … `db3`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { type BackupManifest, BackupManifestSchema } from '../../core/contracts';
import type { BackupStore } from '../../core/store';
import { backupObjectKey, manifestKey, newBackupId } from '../../core/store-keys';

export function manifestFor(database: string, startedAt: Date, dump: Buffer, seconds = 60): BackupManifest {
  return BackupManifestSchema.parse({
    schemaVersion: 1,
    id: newBackupId(startedAt),
    database,
    status: 'complete',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date(startedAt.getTime() + seconds * 1000).toISOString(),
    durationSeconds: seconds,
    source: { host: 'db.example', port: 5432, user: 'backup' },
    server: { version: '17.10', major: 17 },
    tool: { pgDumpVersion: '17.10', pgDumpMajor: 17, pgferryVersion: '0.1.0' },
    format: 'custom',
    compression: { codec: 'zstd', level: 3 },
    strategy: { format: 'custom', jobs: 1 },
    uncompressedBytes: dump.length,
    objects: [
      {
        key: 'dump.pgdump.zst',
        kind: 'dump',
        bytes: dump.length,
        sha256: createHash('sha256').update(dump).digest('hex'),
        compression: { codec: 'zstd', level: 3 },
      },
    ],
    // A realistic manifest: a few dozen tables.
    tables: Array.from({ length: 40 }, (_, i) => ({ schema: 'public', name: `table_${i}`, rows: i * 1000 })),
    globals: { rolePasswords: false },
  });
}

/** Writes `count` complete backups into `store`, one an hour from 2024-01-01 (`databases` names). */
export async function writeCatalogStore(store: BackupStore, count: number, databases = 4): Promise<void> {
  const start = Date.parse('2024-01-01T00:00:00Z');
  for (let i = 0; i < count; i++) {
    // Sizes and durations that grow slowly, with some noise, so that the console's charts have a shape.
    const dump = randomBytes(256 + Math.floor(i / 2) + ((i * 7919) % 61) * 4);
    const seconds = 40 + Math.floor(i / 40) + ((i * 104_729) % 23);
    const manifest = manifestFor(`db${i % databases}`, new Date(start + i * 3_600_000), dump, seconds);
    await store.upload(
      backupObjectKey(manifest.database, manifest.id, 'dump.pgdump.zst'),
      Readable.from([dump]),
    );
    await store.putJson(manifestKey(manifest.database, manifest.id), manifest);
  }
}
