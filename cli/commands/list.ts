import type { Command } from 'commander';
import { readSets } from '../../core/backup-set';
import {
  filterEntries,
  folderUrl,
  isDatedAfter,
  latestVerifications,
  retentionByBackup,
  scanStore,
  unreadableBackups,
} from '../../core/catalog';
import { listedBackup, tierLabel } from '../../core/catalog-json';
import { formatCompression } from '../../core/compression';
import { originOf } from '../../core/contracts';
import { isScoped } from '../../core/postgres/dump-scope';
import { backupSeconds } from '../../core/record-backup';
import { retentionPolicyFromEnv } from '../../core/retention';
import { type BackupStore, normaliseStoreUrl, openStore } from '../../core/store';
import { catalogNameOf } from '../../core/store-keys';
import type { AwsAccess } from '../aws/clients';
import { type AwsOptions, addAwsOptions, refuseAwsOnlyOptions } from '../aws/options';
import { option } from '../options';
import { formatBytes, formatTable, printable } from '../output';
import { tierLegend } from '../tier-legend';
import { catalogNameOption, DATABASE_ALIAS_HELP, NAME_HELP, parseTime, shortTime } from './catalog-options';
import { commandSummary } from './index';

export function registerList(program: Command, aws: AwsAccess): void {
  const command = program
    .command('list')
    .description(commandSummary('list'))
    .option(
      '--store <store>',
      "file:///abs/dir, a folder path, or s3://bucket/prefix (with --aws: the stack's)",
    )
    .option('--name <name>', `only backups filed under this name: ${NAME_HELP}`)
    .option('--database <name>', DATABASE_ALIAS_HELP)
    .option(
      '--since <time>',
      'only backups taken at or after this time (ISO 8601, or a duration ago: 7d)',
      option(parseTime),
    )
    .option(
      '--until <time>',
      'only backups taken at or before this time (ISO 8601, or a duration ago)',
      option(parseTime),
    )
    .option('--explain', 'print what each tier means under the table (as on a terminal, also when piped)')
    .option('--sets', 'list backup sets (pgferry backup --all-databases) instead of backups', false)
    .option('--json', "print an array of manifests, each with the table's columns under catalog", false);
  addAwsOptions(command).action(async (opts: ListOptions) => listCommand(opts, aws));
}

interface ListOptions extends AwsOptions {
  store?: string;
  name?: string;
  database?: string;
  since?: Date;
  until?: Date;
  json: boolean;
  explain?: boolean;
  sets: boolean;
}

async function listCommand(opts: ListOptions, aws: AwsAccess): Promise<void> {
  refuseAwsOnlyOptions(opts);
  const name = catalogNameOption(opts);
  const store = openStore(normaliseStoreUrl(await storeOf(opts, aws)));
  if (opts.sets) return listSets(store, opts);
  const scan = await scanStore(store, name);
  const all = scan.entries;
  const entries = filterEntries(all, { ...opts, database: name });
  const now = new Date();
  // What the list cannot show as it is, on stderr (the JSON on stdout stays an array of manifests).
  for (const folder of unreadableBackups(scan)) {
    const time = Date.parse(folder.startedAt);
    if ((opts.since && time < opts.since.getTime()) || (opts.until && time > opts.until.getTime())) continue;
    process.stderr.write(
      `pgferry: unreadable backup ${folder.backupId} of ${printable(folder.database)} in ${printable(folderUrl(store, folder.folder))}: ` +
        `${printable(folder.problem ?? 'its manifest cannot be read')}\n`,
    );
  }
  for (const { manifest } of entries.filter((e) => isDatedAfter(e.manifest, now))) {
    process.stderr.write(
      `pgferry: backup ${manifest.id} of ${printable(catalogNameOf(manifest))} is dated ${manifest.startedAt}, after now ` +
        `(${now.toISOString()}): a clock was wrong; status does not count it\n`,
    );
  }
  // Tiers are decided over all of a database's backups, whatever the filter shows.
  const policy = retentionPolicyFromEnv(process.env);
  const tiers = retentionByBackup(all, policy, now);
  const verifications = await latestVerifications(store, entries);
  if (opts.json) {
    // Each manifest as stored, with the table's other columns under `catalog`.
    const listed = entries.map((entry) => listedBackup(entry, tiers, verifications));
    process.stdout.write(`${JSON.stringify(listed, null, 2)}\n`);
    return;
  }
  if (entries.length === 0) {
    process.stderr.write(`no complete backups in ${store.url}${name ? ` for ${printable(name)}` : ''}\n`);
    return;
  }
  const rows = entries.map((entry) => {
    const { manifest: m, storedBytes } = entry;
    const decision = tiers.get(entry);
    const verification = verifications.get(entry);
    return [
      m.id,
      // The catalog name (by default the database's; `show` and --json give both); a backup of
      // part of the database is marked, `show` gives its scope.
      `${catalogNameOf(m)}${isScoped(m.scope) ? ' (partial)' : ''}`,
      originOf(m),
      shortTime(m.startedAt),
      tierLabel(decision),
      formatBytes(storedBytes),
      `${m.durationSeconds.toFixed(1)}s`,
      verification ? `${verification.status} ${verification.finishedAt.slice(0, 10)}` : 'never',
      `PostgreSQL ${m.server.version}`,
      formatCompression(m.compression),
    ];
  });
  // On a terminal, or asked: a table read by a script ends with its last row.
  const explain = opts.explain || Boolean(process.stdout.isTTY);
  const legend = !explain
    ? []
    : tierLegend(
        rows.map((row) => row[4]),
        policy,
      );
  process.stdout.write(
    `${formatTable(['ID', 'NAME', 'ORIGIN', 'STARTED', 'TIER', 'SIZE', 'DURATION', 'VERIFIED', 'SERVER', 'COMPRESSION'], rows)}\n` +
      (legend.length > 0 ? `\n${legend.join('\n')}\n` : ''),
  );
}

/**
 * `--sets`: one row per backup set, newest first (one listing of the store's `.sets/` and one read
 * per set); with `--json`, the set manifests.
 */
async function listSets(store: BackupStore, opts: ListOptions): Promise<void> {
  const { sets: all, unreadable } = await readSets(store);
  for (const set of unreadable) {
    process.stderr.write(`pgferry: unreadable backup set ${set.id}: ${printable(set.problem)}\n`);
  }
  const sets = all.filter((set) => {
    const time = Date.parse(set.startedAt);
    return !(opts.since && time < opts.since.getTime()) && !(opts.until && time > opts.until.getTime());
  });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(sets, null, 2)}\n`);
    return;
  }
  if (sets.length === 0) {
    process.stderr.write(`no backup sets in ${store.url}\n`);
    return;
  }
  const rows = sets.map((set) => [
    set.id,
    `${set.source.host}:${set.source.port}`,
    shortTime(set.startedAt),
    `${backupSeconds(set.startedAt, set.finishedAt).toFixed(1)}s`,
    set.status,
    String(set.members.length),
    set.failed.length ? set.failed.map((f) => printable(f.database)).join(', ') : '-',
    `PostgreSQL ${set.server.version}`,
  ]);
  process.stdout.write(
    `${formatTable(['SET', 'SERVER', 'STARTED', 'DURATION', 'STATUS', 'DATABASES', 'FAILED', 'VERSION'], rows)}\n`,
  );
}

/** `--store`; with `--aws` and no `--store`, the stack's (its `StoreUrl` output). */
async function storeOf(opts: ListOptions, aws: AwsAccess): Promise<string> {
  if (opts.store !== undefined) return opts.store;
  if (!opts.aws) throw new Error("required option '--store <store>' not specified");
  const { storeUrlOnAws } = await import('../aws');
  return storeUrlOnAws(opts, aws);
}
