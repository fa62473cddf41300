import { type Command, Option } from 'commander';
import { describeFailures } from '../../core/backup-set';
import { formatCompression, parseCompression } from '../../core/compression';
import { parseConnectionUrl, parseServerUrl } from '../../core/connection';
import {
  BackupManifestSchema,
  type BackupOutcome,
  BackupOutcomeSchema,
  type BackupRequest,
  type BackupRequestInput,
  BackupRequestSchema,
  type Connection,
  parsePayload,
  SetSelectionSchema,
} from '../../core/contracts';
import { type Credentials, localPassword } from '../../core/credentials';
import { errorMessage, PgferryError } from '../../core/errors';
import { pinBackup } from '../../core/pin';
import { assertDumpPattern, isScoped } from '../../core/postgres/dump-scope';
import { backupSeconds } from '../../core/record-backup';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { setManifestKey } from '../../core/store-keys';
import type { AwsAccess } from '../aws/clients';
import { type AwsOptions, addAwsOptions, awsConnection, refuseAwsOnlyOptions } from '../aws/options';
import { parseDurationMs } from '../duration';
import { runLocally } from '../interrupts';
import { configureLogging, option, parseJobs } from '../options';
import { parseOutcome, readDocument } from '../outcomes';
import { formatBytes, printable } from '../output';
import { type RunOutcome, withRunHooks } from '../run-hooks';
import { commandSummary } from './index';

export function registerBackup(program: Command, aws: AwsAccess): void {
  const command = program
    .command('backup')
    .description(commandSummary('backup'))
    .requiredOption(
      '--source <url>',
      'database to back up: postgres://user:password@host:port/database[?sslmode=…] (with --all-databases, the server: …@host:port/)',
    )
    .requiredOption(
      '--store <store>',
      'where backups live: file:///abs/dir, a folder path, or s3://bucket/prefix',
    )
    .addOption(
      new Option('--compress <codec[:level]>', 'zstd[:1-19], gzip[:1-9], lz4[:1-12] or none')
        .default('zstd:1')
        .argParser(option((v) => formatCompression(parseCompression(v)))),
    )
    .option('--with-role-passwords', 'include role password hashes in the stored globals', false)
    .option(
      '--name <name>',
      "the catalog name to file the backup under (default: the database's name); a store refuses one name for two servers",
    )
    .option(
      '--lock-wait-timeout <duration>',
      'fail, naming who holds it, when a table lock is not granted within this (e.g. 30s, 5min; default 5min)',
      option(parseDurationMs),
    )
    .option(
      '--schema <pattern>',
      'back up only schemas matching this pg_dump pattern (repeatable)',
      pattern('--schema'),
      [],
    )
    .option(
      '--exclude-schema <pattern>',
      'leave out schemas matching this pattern (repeatable)',
      pattern('--exclude-schema'),
      [],
    )
    .option(
      '--table <pattern>',
      'back up only tables matching this pattern, e.g. public.orders or app.log_* (repeatable)',
      pattern('--table'),
      [],
    )
    .option(
      '--exclude-table <pattern>',
      'leave out tables matching this pattern (repeatable)',
      pattern('--exclude-table'),
      [],
    )
    .option(
      '--exclude-table-data <pattern>',
      "keep these tables' definitions but not their rows (repeatable)",
      pattern('--exclude-table-data'),
      [],
    )
    .option(
      '--all-databases',
      "every connectable non-template database of --source's server, and its roles, as one backup set",
      false,
    )
    .option(
      '--include <pattern>',
      'with --all-databases: only databases matching this pattern (* and ?; repeatable)',
      (value: string, previous: string[]) => [...previous, value],
      [],
    )
    .option(
      '--exclude <name>',
      'with --all-databases: leave out this database (repeatable)',
      (value: string, previous: string[]) => [...previous, value],
      [],
    )
    .option(
      '--parallel <n>',
      'with --all-databases: databases backed up at once (default: the cores, at most 4)',
      option(parseParallel),
    )
    .option(
      '--jobs <n>',
      "pg_dumps in parallel in one snapshot, each storing its share of the tables' data as an object of its own (default: one per two of the task's cores, at most 4, each side one carrying 256 MiB of tables; one on 2 cores)",
      option(parseJobs),
    )
    .option(
      '--pin',
      'pin the new backup (every member of a set): retention keeps it until pgferry unpin',
      false,
    )
    .option(
      '--json',
      'print the manifest (with --all-databases, the set manifest) as JSON instead of the id',
      false,
    )
    .option('--verbose', "print the workflow's logs on stderr", false);
  addAwsOptions(command)
    .option('--password-secret-arn <arn>', "with --aws: the Secrets Manager secret with --source's password")
    .option(
      '--iam-auth',
      'with --aws: log in with an RDS IAM authentication token instead of a password',
      false,
    )
    .action(withRunHooks('backup', (opts: BackupOptions) => backupCommand(opts, aws)));
}

/**
 * A repeatable scope option: each pg_dump pattern checked as it is given, then collected. The
 * refusal is pgferry's own line, not commander's, which would quote the argument as it is (a
 * pattern with a line break would break the line).
 */
function pattern(flag: string): (value: string, previous: string[]) => string[] {
  return (value, previous) => {
    try {
      assertDumpPattern(value, flag);
    } catch (err) {
      throw new PgferryError('InvalidInput', errorMessage(err));
    }
    return [...previous, value];
  };
}

/** `--parallel`: a whole number from 1 to 32. */
function parseParallel(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 32)
    throw new Error('--parallel must be a whole number from 1 to 32');
  return n;
}

interface BackupOptions extends AwsOptions {
  source: string;
  store: string;
  compress: string;
  withRolePasswords: boolean;
  name?: string;
  lockWaitTimeout?: number;
  jobs?: number;
  schema: string[];
  excludeSchema: string[];
  table: string[];
  excludeTable: string[];
  excludeTableData: string[];
  allDatabases: boolean;
  include: string[];
  exclude: string[];
  parallel?: number;
  pin: boolean;
  json: boolean;
  verbose: boolean;
  passwordSecretArn?: string;
  iamAuth: boolean;
}

async function backupCommand(opts: BackupOptions, aws: AwsAccess): Promise<RunOutcome> {
  configureLogging(opts.verbose);
  refuseAwsOnlyOptions(opts);
  if (opts.allDatabases) return serverBackupCommand(opts);
  if (opts.include.length || opts.exclude.length || opts.parallel !== undefined) {
    throw new PgferryError(
      'InvalidInput',
      '--include, --exclude and --parallel select databases: use them with --all-databases',
    );
  }
  if (opts.aws) {
    const request = backupRequest(opts, awsConnection(opts.source, '--source', opts));
    const { runOnAws } = await import('../aws');
    const outcome = parseOutcome(BackupOutcomeSchema, await runOnAws('backup', request, opts, aws), 'backup');
    if (opts.pin) await pinBackup(openStore(outcome.store), outcome.backupId, outcome.database);
    await printBackup(outcome, opts.json);
    return outcome;
  }
  const { connection, password: urlPassword } = parseConnectionUrl(opts.source, '--source');
  const credentials: Credentials = { source: localPassword(urlPassword, 'source', process.env) };
  const request = backupRequest(opts, connection);

  const { runBackupWorkflow } = await import('../local-executor');
  const output = await runLocally('backup', opts.verbose, (signal, display) =>
    runBackupWorkflow(request, { credentials, signal, ...display }),
  );
  const outcome = parseOutcome(BackupOutcomeSchema, output, 'backup');
  // Where the progress line was, what it came to (stdout keeps the id alone, for scripts).
  if (process.stderr.isTTY && !opts.verbose) process.stderr.write(`${describeBackup(outcome)}\n`);
  if (opts.pin) await pinBackup(openStore(outcome.store), outcome.backupId, outcome.database);
  await printBackup(outcome, opts.json);
  return outcome;
}

/**
 * `--all-databases`: the server as a backup set (cli/server-sets.ts). Prints the set's id (or its
 * manifest); a set with a failed member fails the command after its manifest is written, naming
 * the databases that failed.
 */
async function serverBackupCommand(opts: BackupOptions): Promise<RunOutcome> {
  if (opts.aws) {
    throw new PgferryError(
      'InvalidInput',
      '--all-databases runs locally; on AWS a server is backed up by its servers[] entry (its schedule, or its ServerBackupStateMachineArn with that input): see docs/aws.md, "Servers"',
    );
  }
  const scoped = [opts.schema, opts.excludeSchema, opts.table, opts.excludeTable, opts.excludeTableData].some(
    (list) => list.length > 0,
  );
  if (scoped || opts.name !== undefined) {
    throw new PgferryError(
      'InvalidInput',
      '--name and the --schema/--table options apply to one database: not with --all-databases (each member is filed under its database name)',
    );
  }
  const { connection, password: urlPassword } = parseServerUrl(opts.source, '--source');
  const password = localPassword(urlPassword, 'source', process.env);
  const store = normaliseStoreUrl(opts.store);
  const { runServerBackup, defaultSetParallel } = await import('../server-sets');
  const set = await runLocally('backup', opts.verbose, (signal, display) =>
    runServerBackup(
      {
        source: connection,
        password,
        store,
        selection: parsePayload(
          SetSelectionSchema,
          { include: opts.include, exclude: opts.exclude },
          '--include/--exclude',
        ),
        parallel: opts.parallel ?? defaultSetParallel(),
        compression: parseCompression(opts.compress),
        withRolePasswords: opts.withRolePasswords,
        ...(opts.lockWaitTimeout === undefined ? {} : { lockWaitTimeoutMs: opts.lockWaitTimeout }),
      },
      {
        signal,
        onNotice: display.onNotice,
        onMember: (result) =>
          display.onNotice(
            'error' in result
              ? `${result.database}: failed: ${result.error.message}`
              : `${result.database}: backed up as ${result.backupId}`,
          ),
      },
    ),
  );
  if (opts.pin) {
    const at = openStore(store);
    for (const member of set.members) await pinBackup(at, member.backupId, member.name);
  }
  process.stdout.write(opts.json ? `${JSON.stringify(set, null, 2)}\n` : `${set.id}\n`);
  if (set.status === 'failed') {
    throw new PgferryError(
      'DumpFailed',
      `backup set ${set.id} failed: ${describeFailures(set)}; its ${set.members.length} complete members are listed and restorable one by one`,
    );
  }
  return {
    store,
    key: setManifestKey(set.id),
    databases: set.members.map((m) => ({ database: m.database, backupId: m.backupId })),
  };
}

/** `backed up shop in 1.4s: 2.1 MB stored (9.8 MB dumped)`, the duration as `list` shows it. */
export function describeBackup(outcome: BackupOutcome): string {
  const seconds = backupSeconds(outcome.startedAt, outcome.finishedAt);
  return (
    `backed up ${printable(outcome.database)} in ${seconds.toFixed(1)}s: ` +
    `${formatBytes(outcome.storedBytes)} stored (${formatBytes(outcome.uncompressedBytes)} dumped)`
  );
}

/** The backup workflow's input, the same locally and on AWS. */
function backupRequest(opts: BackupOptions, source: Connection): BackupRequest {
  const scope = {
    schemas: opts.schema,
    excludeSchemas: opts.excludeSchema,
    tables: opts.table,
    excludeTables: opts.excludeTable,
    excludeTableData: opts.excludeTableData,
  };
  const input: BackupRequestInput = {
    ...(opts.name === undefined ? {} : { name: opts.name }),
    source,
    store: normaliseStoreUrl(opts.store),
    compression: parseCompression(opts.compress),
    withRolePasswords: opts.withRolePasswords,
    ...(opts.lockWaitTimeout === undefined ? {} : { lockWaitTimeoutMs: opts.lockWaitTimeout }),
    ...(opts.jobs === undefined ? {} : { jobs: opts.jobs }),
    // A whole-database backup's request carries no scope, as before scopes were offered.
    ...(isScoped(scope) ? { scope } : {}),
  };
  return parsePayload(BackupRequestSchema, input, 'backup request');
}

/** The backup id, or with `--json` the manifest the workflow's output names. */
async function printBackup(outcome: BackupOutcome, json: boolean): Promise<void> {
  if (json) {
    const manifest = await readDocument(outcome, BackupManifestSchema, 'manifest');
    process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
  } else {
    process.stdout.write(`${outcome.backupId}\n`);
  }
}
