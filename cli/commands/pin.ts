import type { Command } from 'commander';
import { pinBackup, unpinBackup } from '../../core/pin';
import { retentionPolicyFromEnv } from '../../core/retention';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { catalogNameOf } from '../../core/store-keys';
import { printable } from '../output';
import { commandSummary } from './index';

/** `pgferry pin <name> <backup>`. */
export function registerPin(program: Command): void {
  program
    .command('pin')
    .description(commandSummary('pin'))
    .argument('<name>', "the backup's catalog name (by default its database's name)")
    .argument('<backup>', 'a backup id, or latest')
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option('--reason <text>', 'why it is kept, recorded beside it')
    .action(async (name: string, backup: string, opts: { store: string; reason?: string }) => {
      const store = openStore(normaliseStoreUrl(opts.store));
      const manifest = await pinBackup(store, backup, name, {
        ...(opts.reason ? { reason: opts.reason } : {}),
      });
      process.stdout.write(`pinned ${manifest.id} of ${printable(catalogNameOf(manifest))}\n`);
    });
}

/** `pgferry unpin <name> <backup>`. */
export function registerUnpin(program: Command): void {
  program
    .command('unpin')
    .description(commandSummary('unpin'))
    .argument('<name>', "the backup's catalog name (by default its database's name)")
    .argument('<backup>', 'a backup id, or latest')
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .action(async (name: string, backup: string, opts: { store: string }) => {
      const store = openStore(normaliseStoreUrl(opts.store));
      const { manifest, wasPinned } = await unpinBackup(
        store,
        backup,
        name,
        retentionPolicyFromEnv(process.env),
      );
      process.stdout.write(
        `${wasPinned ? 'unpinned' : 'was not pinned:'} ${manifest.id} of ${printable(catalogNameOf(manifest))}\n`,
      );
    });
}
