import type { Command } from 'commander';
import { type CatalogEntry, readReports, retentionByBackup, scanStore } from '../../core/catalog';
import { backupDetail } from '../../core/catalog-json';
import { formatCompression } from '../../core/compression';
import type { BackupManifest } from '../../core/contracts';
import { PgferryError } from '../../core/errors';
import { describeDumpScope, isScoped } from '../../core/postgres/dump-scope';
import type { StoredReport } from '../../core/reports';
import { resolveBackup } from '../../core/resolve-backup';
import { describeReason, type RetentionDecision, retentionPolicyFromEnv } from '../../core/retention';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { catalogNameOf } from '../../core/store-keys';
import { formatBytes, formatTable, printable } from '../output';
import { catalogNameOption, DATABASE_ALIAS_HELP, shortTime } from './catalog-options';
import { commandSummary } from './index';

export function registerShow(program: Command): void {
  program
    .command('show')
    .description(commandSummary('show'))
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .requiredOption('--backup <id>', 'a backup id, or latest (the newest complete backup filed under --name)')
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
  backup: string;
  name?: string;
  database?: string;
  json: boolean;
}

async function showCommand(opts: ShowOptions): Promise<void> {
  const store = openStore(normaliseStoreUrl(opts.store));
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

function describeRetention(decision: RetentionDecision | undefined): string {
  if (!decision) return '-';
  if (decision.afterNow) return '- (newer than now)';
  if (!decision.keep) return 'expired (kept by no rule: the next prune deletes it)';
  return `${decision.tier} (${decision.reasons.map(describeReason).join(', ')})`;
}
