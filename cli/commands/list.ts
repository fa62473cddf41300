import type { Command } from 'commander';
import { listBackups } from '../../core/catalog';
import { formatCompression } from '../../core/compression';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { formatBytes, formatTable } from '../output';

export function registerList(program: Command): void {
  program
    .command('list')
    .description('List complete backups, newest first')
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option('--database <name>', 'only backups of this database')
    .option('--json', 'print an array of manifests', false)
    .action(async (opts: ListOptions) => listCommand(opts));
}

interface ListOptions {
  store: string;
  database?: string;
  json: boolean;
}

async function listCommand(opts: ListOptions): Promise<void> {
  const store = openStore(normaliseStoreUrl(opts.store));
  const manifests = await listBackups(store, opts.database);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(manifests, null, 2)}\n`);
    return;
  }
  if (manifests.length === 0) {
    process.stderr.write(
      `no complete backups in ${store.url}${opts.database ? ` for ${opts.database}` : ''}\n`,
    );
    return;
  }
  const rows = manifests.map((m) => [
    m.id,
    m.database,
    m.finishedAt.replace(/\.\d+Z$/, 'Z'),
    formatBytes(m.objects.reduce((sum, o) => sum + o.bytes, 0)),
    `${m.durationSeconds.toFixed(1)}s`,
    `PostgreSQL ${m.server.version}`,
    formatCompression(m.compression),
  ]);
  process.stdout.write(
    `${formatTable(['ID', 'DATABASE', 'FINISHED', 'SIZE', 'DURATION', 'SERVER', 'COMPRESSION'], rows)}\n`,
  );
}
