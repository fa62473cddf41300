/**
 * `pgferry`: back up PostgreSQL databases by running pgferry's Step Functions workflows on this
 * machine (the same definitions that run on AWS).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { listBackups } from '../core/catalog';
import { formatCompression, parseCompression } from '../core/compression';
import { parseConnectionUrl, passwordEnvVar } from '../core/connection';
import {
  type BackupManifest,
  type BackupRequestInput,
  BackupRequestSchema,
  parsePayload,
} from '../core/contracts';
import { errorMessage } from '../core/errors';
import { normaliseStoreUrl, openStore } from '../core/store';
import { PGFERRY_VERSION } from '../core/version';
import { formatBytes, formatTable, ProgressLine } from './output';

function option<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError(errorMessage(err));
    }
  };
}

/** In-process handlers log through Powertools; keep them quiet unless asked. */
function configureLogging(verbose: boolean): void {
  process.env.POWERTOOLS_LOG_LEVEL = verbose ? 'DEBUG' : 'SILENT';
}

export function buildProgram(): Command {
  const program = new Command('pgferry')
    .description(
      'Backups of PostgreSQL databases you can restore: checksummed, streamed, run by Step Functions workflows',
    )
    .version(PGFERRY_VERSION)
    .configureOutput({ outputError: (str, write) => write(`pgferry: ${str.replace(/^error: /, '')}`) });

  program
    .command('backup')
    .description('Back up one database into a store (runs the backup workflow locally)')
    .requiredOption(
      '--source <url>',
      'database to back up: postgres://user:password@host:port/database[?sslmode=…]',
    )
    .requiredOption(
      '--store <store>',
      'where backups live: file:///abs/dir, a folder path, or s3://bucket/prefix',
    )
    .addOption(
      new Option('--compress <codec[:level]>', 'zstd[:1-19], gzip[:1-9], lz4[:1-12] or none')
        .default('zstd:3')
        .argParser(option((v) => formatCompression(parseCompression(v)))),
    )
    .option('--with-role-passwords', 'include role password hashes in the stored globals', false)
    .option('--json', 'print the manifest as JSON instead of the backup id', false)
    .option('--verbose', "print the workflow's logs on stderr", false)
    .action(async (opts: BackupOptions) => backupCommand(opts));

  program
    .command('list')
    .description('List complete backups, newest first')
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option('--database <name>', 'only backups of this database')
    .option('--json', 'print an array of manifests', false)
    .action(async (opts: ListOptions) => listCommand(opts));

  return program;
}

interface BackupOptions {
  source: string;
  store: string;
  compress: string;
  withRolePasswords: boolean;
  json: boolean;
  verbose: boolean;
}

async function backupCommand(opts: BackupOptions): Promise<void> {
  configureLogging(opts.verbose);
  const { connection, password: urlPassword } = parseConnectionUrl(opts.source, '--source');
  // As with libpq: a password in the URL, else PGPASSWORD (else .pgpass, read by the tools).
  const password = urlPassword ?? process.env.PGPASSWORD;
  // The password reaches the handlers and the task through the environment only.
  if (password !== undefined) process.env[passwordEnvVar('source')] = password;
  const input: BackupRequestInput = {
    source: connection,
    store: normaliseStoreUrl(opts.store),
    compression: parseCompression(opts.compress),
    withRolePasswords: opts.withRolePasswords,
  };
  const request = parsePayload(BackupRequestSchema, input, 'backup request');

  const { runBackupWorkflow } = await import('./local-executor');
  const progress = new ProgressLine();
  let manifest: BackupManifest;
  try {
    manifest = (await runBackupWorkflow(request, {
      onProgress: (p) => progress.update('dumping', p.dumpedBytes, `→ stored ${formatBytes(p.storedBytes)}`),
      onTaskLog: opts.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
    })) as BackupManifest;
  } finally {
    progress.done();
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
  } else {
    process.stdout.write(`${manifest.id}\n`);
  }
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

/** Runs the CLI; errors become one line on stderr and exit status 1. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      process.exitCode = e.exitCode ?? 2;
      return;
    }
    process.stderr.write(`pgferry: ${oneLine(errorMessage(err))}\n`);
    process.exitCode = 1;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

if (require.main === module) void main();
