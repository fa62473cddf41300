/**
 * How long listing the catalog takes: writes N complete backups (valid manifests and a small
 * dump object each, default 2,000) into a fresh local store and times `listBackups` over it,
 * cold and warm. A benchmark to run by hand (`npm run build && node dist/scripts/bench-catalog.js
 * [count]`), not a test: timings on a shared machine make poor assertions.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { listBackups } from '../core/catalog';
import { type BackupManifest, BackupManifestSchema } from '../core/contracts';
import { LocalStore } from '../core/store';
import { backupObjectKey, manifestKey, newBackupId } from '../core/store-keys';

function manifestFor(database: string, startedAt: Date, dump: Buffer): BackupManifest {
  return BackupManifestSchema.parse({
    schemaVersion: 1,
    id: newBackupId(startedAt),
    database,
    status: 'complete',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date(startedAt.getTime() + 60_000).toISOString(),
    durationSeconds: 60,
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

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 2000);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-bench-catalog-'));
  const store = new LocalStore(dir);
  try {
    const start = Date.parse('2024-01-01T00:00:00Z');
    for (let i = 0; i < count; i++) {
      const dump = randomBytes(256);
      const manifest = manifestFor(`db${i % 4}`, new Date(start + i * 3_600_000), dump);
      await store.upload(
        backupObjectKey(manifest.database, manifest.id, 'dump.pgdump.zst'),
        Readable.from([dump]),
      );
      await store.putJson(manifestKey(manifest.database, manifest.id), manifest);
    }
    const timings: number[] = [];
    for (let run = 0; run < 5; run++) {
      const t0 = process.hrtime.bigint();
      const listed = await listBackups(store);
      timings.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (listed.length !== count) throw new Error(`listed ${listed.length} of ${count} backups`);
    }
    const sorted = [...timings].sort((a, b) => a - b);
    process.stdout.write(
      `listBackups over ${count} manifests in a local store: first ${timings[0].toFixed(0)} ms, ` +
        `median ${sorted[2].toFixed(0)} ms, best ${sorted[0].toFixed(0)} ms\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
