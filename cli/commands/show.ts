import type { Command } from 'commander';
import { describeFailures, resolveSet } from '../../core/backup-set';
import { type CatalogEntry, readReports, retentionByBackup, scanStore } from '../../core/catalog';
import { backupDetail } from '../../core/catalog-json';
import { formatCompression } from '../../core/compression';
import { type BackupManifest, originOf } from '../../core/contracts';
import { PgferryError } from '../../core/errors';
import { describeDumpScope, isScoped } from '../../core/postgres/dump-scope';
import { backupSeconds } from '../../core/record-backup';
import type { StoredReport } from '../../core/reports';
import { resolveBackup } from '../../core/resolve-backup';
import { describeReason, type RetentionDecision, retentionPolicyFromEnv } from '../../core/retention';
import { type BackupStore, normaliseStoreUrl, openStore } from '../../core/store';
import { catalogNameOf } from '../../core/store-keys';
import { formatBytes, formatTable, printable } from '../output';
import { catalogNameOption, DATABASE_ALIAS_HELP, shortTime } from './catalog-options';
import { commandSummary } from './index';

export function registerShow(program: Command): void {
  program
    .command('show')
    .description(commandSummary('show'))
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option('--backup <id>', 'a backup id, or latest (the newest complete backup filed under --name)')
    .option('--set <id>', 'a backup set id, or latest (the newest complete set): its members and what failed')
    .option(
      '--name <name>',
      "the backup's catalog name (needed for latest when the store holds several; by default a database's name)",
    )
    .option('--database <name>', DATABASE_ALIAS_HELP)
    .option('--json', 'print {manifest, retention, reports} as JSON', false)
    .action(async (opts: ShowOptions) => showCommand(opts));
}

interface ShowOptions {
  store: string;
  backup?: string;
  set?: string;
  name?: string;
  database?: string;
  json: boolean;
}

async function showCommand(opts: ShowOptions): Promise<void> {
  const store = openStore(normaliseStoreUrl(opts.store));
  if (opts.set !== undefined) {
    if (opts.backup !== undefined) throw new PgferryError('InvalidInput', 'give --backup or --set, not both');
    return showSet(store, opts.set, opts.json);
  }
  if (opts.backup === undefined) throw new Error("required option '--backup <id>' not specified");
  const manifest = await resolveBackup(store, opts.backup, catalogNameOption(opts));
  const { entries } = await scanStore(store, catalogNameOf(manifest));
  const entry = entries.find((e) => e.manifest.id === manifest.id);
  if (!entry) throw new PgferryError('BackupNotFound', `backup ${manifest.id} is no longer in ${store.url}`);
  if (opts.json) {
    const detail = await backupDetail(store, entries, entry, new Date());
    process.stdout.write(`${JSON.stringify(detail, null, 2)}\n`);
    return;
  }
  const retention = retentionByBackup(entries, retentionPolicyFromEnv(process.env), new Date()).get(entry);
  const reports = await readReports(store, entry);
  process.stdout.write(`${describeBackup(entry, retention, reports)}\n`);
}

function describeBackup(
  entry: CatalogEntry,
  retention: RetentionDecision | undefined,
  reports: StoredReport[],
): string {
  const m: BackupManifest = entry.manifest;
  const rows = entry.manifest.tables.reduce((sum, t) => sum + t.rows, 0);
  const verification = reports.find((r) => r.report.kind === 'verify')?.report;
  const lines: [string, string][] = [
    ['backup', m.id],
    ['name', catalogNameOf(m)],
    ['database', m.database],
    ['scope', isScoped(m.scope) ? `partial: ${describeDumpScope(m.scope)}` : 'whole database'],
    ['origin', `${originOf(m)}${m.setId ? ` (member of set ${m.setId})` : ''}`],
    ['started', shortTime(m.startedAt)],
    ['finished', `${shortTime(m.finishedAt)} (${m.durationSeconds.toFixed(1)}s)`],
    ['tier', describeRetention(retention)],
    ['verified', verification ? `${verification.status} at ${shortTime(verification.finishedAt)}` : 'never'],
    ['source', `${m.source.user}@${m.source.host}:${m.source.port}`],
    [
      'server',
      `PostgreSQL ${m.server.version}${m.server.systemIdentifier ? ` (system identifier ${m.server.systemIdentifier})` : ''}`,
    ],
    ['tools', `pg_dump ${m.tool.pgDumpVersion}, pgferry ${m.tool.pgferryVersion}`],
    ['compression', formatCompression(m.compression)],
    ['size', `${formatBytes(entry.storedBytes)} stored, ${formatBytes(m.uncompressedBytes)} dumped`],
    [
      isScoped(m.scope) ? 'tables with data' : 'tables',
      `${m.tables.length} (${rows.toLocaleString('en-US')} rows)`,
    ],
    ['globals', m.globals.rolePasswords ? 'with role passwords' : 'without role passwords'],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  const out = lines.map(([k, v]) => `${k.padEnd(width)}  ${printable(v)}`);
  out.push(
    '',
    formatTable(
      ['OBJECT', 'KIND', 'SIZE', 'SHA-256'],
      m.objects.map((o) => [o.key, o.kind, formatBytes(o.bytes), o.sha256]),
    ),
  );
  out.push('');
  if (reports.length === 0) {
    out.push('no restore or verification reports');
  } else {
    out.push(
      formatTable(
        ['REPORT', 'STATUS', 'FINISHED', 'KEY'],
        reports.map(({ key, report }) => [
          report.kind,
          report.status,
          shortTime(report.finishedAt),
          key.slice(key.lastIndexOf('/') + 1),
        ]),
      ),
    );
  }
  return out.join('\n');
}

/** `show --set`: the set, its members (each with its size, from its manifest) and what failed. */
async function showSet(store: BackupStore, ref: string, json: boolean): Promise<void> {
  const set = await resolveSet(store, ref);
  if (json) {
    process.stdout.write(`${JSON.stringify(set, null, 2)}\n`);
    return;
  }
  const lines: [string, string][] = [
    ['set', set.id],
    ['status', set.status === 'complete' ? 'complete' : `failed: ${describeFailures(set)}`],
    ['source', `${set.source.user}@${set.source.host}:${set.source.port}`],
    ['server', `PostgreSQL ${set.server.version}`],
    ['started', shortTime(set.startedAt)],
    [
      'finished',
      `${shortTime(set.finishedAt)} (${backupSeconds(set.startedAt, set.finishedAt).toFixed(1)}s)`,
    ],
    [
      'selection',
      `${set.selection.include.length ? `include ${set.selection.include.join(', ')}` : 'every database'}` +
        `${set.selection.exclude.length ? `, exclude ${set.selection.exclude.join(', ')}` : ''}; ${set.parallel} at once`,
    ],
    [
      'roles',
      set.globals
        ? `${set.globals.key} of ${set.globals.backupId} (${set.globals.rolePasswords ? 'with' : 'without'} role passwords)`
        : 'none (no member completed)',
    ],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  const out = lines.map(([k, v]) => `${k.padEnd(width)}  ${printable(v)}`);
  const rows = await Promise.all(
    set.members.map(async (m) => {
      const manifest = await resolveBackup(store, m.backupId, m.name).catch(() => undefined);
      return [
        printable(m.database),
        m.backupId,
        manifest ? formatBytes(manifest.objects.reduce((sum, o) => sum + o.bytes, 0)) : 'missing',
        manifest ? String(manifest.tables.length) : '-',
      ];
    }),
  );
  out.push('', formatTable(['DATABASE', 'BACKUP', 'SIZE', 'TABLES'], rows));
  for (const f of set.failed) out.push(`failed ${printable(f.database)}: ${printable(f.error.message)}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

function describeRetention(decision: RetentionDecision | undefined): string {
  if (!decision) return '-';
  if (decision.afterNow) return '- (newer than now)';
  if (decision.pinned) return 'pinned (kept until pgferry unpin)';
  if (decision.shortLived && decision.keep) return 'kept (a safety or migration backup, kept for its days)';
  if (!decision.keep) return 'expired (kept by no rule: the next prune deletes it)';
  return `${decision.tier} (${decision.reasons.map(describeReason).join(', ')})`;
}
