import { type Command, Option } from 'commander';
import { resolveSet } from '../../core/backup-set';
import { localTargetName } from '../../core/catalog-name';
import { parseConnectionUrl, parseServerUrl } from '../../core/connection';
import {
  type Connection,
  parsePayload,
  type RestoreOutcome,
  RestoreOutcomeSchema,
  RestoreReportSchema,
  type RestoreRequest,
  type RestoreRequestInput,
  RestoreRequestSchema,
} from '../../core/contracts';
import { type Credentials, localPassword } from '../../core/credentials';
import { PgferryError } from '../../core/errors';
import { describeDumpScope } from '../../core/postgres/dump-scope';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { setManifestKey } from '../../core/store-keys';
import type { AwsAccess } from '../aws/clients';
import { type AwsOptions, addAwsOptions, awsConnection, refuseAwsOnlyOptions } from '../aws/options';
import { runLocally } from '../interrupts';
import { configureLogging, option, parseJobs, toastCompressionOption } from '../options';
import { parseOutcome, readDocument } from '../outcomes';
import { printable } from '../output';
import { type RunOutcome, withRunHooks } from '../run-hooks';
import { catalogNameOption, DATABASE_ALIAS_HELP } from './catalog-options';
import { commandSummary } from './index';

export function registerRestore(program: Command, aws: AwsAccess): void {
  const collect = (value: string, previous: string[]) => [...previous, value];
  const command = program
    .command('restore')
    .description(commandSummary('restore'))
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option(
      '--backup <id|latest>',
      'the backup id, or latest (the newest complete backup filed under --name)',
    )
    .option(
      '--set <id|latest>',
      "a backup set (pgferry backup --all-databases), or latest (the newest complete one): its roles, then every database, into --target's server",
    )
    .option(
      '--name <name>',
      "the backup's catalog name (needed with latest when the store holds several; by default a database's name)",
    )
    .option('--database <name>', DATABASE_ALIAS_HELP)
    .requiredOption(
      '--target <url>',
      'where to restore: postgres://user:password@host:port/database (with --set, the server: …@host:port/)',
    )
    .addOption(
      new Option('--mode <mode>', 'create: a new database; clean: replace the contents of an existing one')
        .choices(['create', 'clean'])
        .default('create'),
    )
    .option('--jobs <n>', 'parallel pg_restore jobs (default: the number of cores)', option(parseJobs))
    .option(
      '--with-globals',
      "create the backup's roles that the target lacks (existing ones are left alone)",
      false,
    )
    .option('--no-owner', 'do not set object owners (everything is owned by the connecting user)')
    .option('--no-acl', 'do not restore privileges (GRANT/REVOKE)')
    .option('--role <name>', 'run the restore as this role (SET ROLE)')
    .option('--schema <name>', 'restore only this schema (repeatable)', collect, [])
    .option(
      '--table <name>',
      'restore only this table, view or sequence: name (in every schema, as pg_restore -t) or schema.name; ' +
        'exact, case included; double-quote a name with a dot in it ("a.b") (repeatable)',
      collect,
      [],
    )
    .option(
      '--force',
      'restore over a non-empty database (with --mode clean) or over the backup source',
      false,
    )
    .option('--allow-downgrade', 'allow a target server older than the backup source', false)
    .option('--no-safety-backup', 'with --mode clean, do not back up the target first')
    .option(
      '--terminate-connections',
      'with --mode clean, end the other sessions connected to the target database first (without it, they make the restore fail, named)',
      false,
    )
    .addOption(toastCompressionOption())
    .option('--json', 'print the restore report as JSON', false)
    .option('--verbose', "print the workflow's logs on stderr", false);
  addAwsOptions(command)
    .option('--password-secret-arn <arn>', "with --aws: the Secrets Manager secret with --target's password")
    .option(
      '--iam-auth',
      'with --aws: log in with an RDS IAM authentication token instead of a password',
      false,
    )
    .action(withRunHooks('restore', (opts: RestoreOptions) => restoreCommand(opts, aws)));
}

interface RestoreOptions extends AwsOptions {
  store: string;
  backup?: string;
  set?: string;
  name?: string;
  database?: string;
  target: string;
  mode: string;
  jobs?: number;
  withGlobals: boolean;
  owner: boolean;
  acl: boolean;
  role?: string;
  schema: string[];
  table: string[];
  force: boolean;
  allowDowngrade: boolean;
  safetyBackup: boolean;
  terminateConnections: boolean;
  toastCompression: string;
  json: boolean;
  verbose: boolean;
  passwordSecretArn?: string;
  iamAuth: boolean;
}

async function restoreCommand(opts: RestoreOptions, aws: AwsAccess): Promise<RunOutcome> {
  configureLogging(opts.verbose);
  refuseAwsOnlyOptions(opts);
  if (opts.set !== undefined) return restoreSetCommand(opts);
  const backup = opts.backup;
  if (backup === undefined)
    throw new PgferryError(
      'InvalidInput',
      'say what to restore: --backup <id|latest> (one backup), or --set <id|latest> (a backup set, into a server)',
    );
  if (opts.aws) {
    const request = restoreRequest({ ...opts, backup }, awsConnection(opts.target, '--target', opts));
    const { runOnAws } = await import('../aws');
    const outcome = parseOutcome(
      RestoreOutcomeSchema,
      await runOnAws('restore', request, opts, aws),
      'restore',
    );
    await printReport(outcome, opts.json);
    return outcome;
  }
  const { connection, password: urlPassword } = parseConnectionUrl(opts.target, '--target');
  const credentials: Credentials = { target: localPassword(urlPassword, 'target', process.env) };
  const request = restoreRequest({ ...opts, backup }, connection);
  const { runRestoreWorkflow } = await import('../local-executor');
  const output = await runLocally('restore', opts.verbose, (signal, display) =>
    runRestoreWorkflow(request, { credentials, signal, ...display }),
  );
  const outcome = parseOutcome(RestoreOutcomeSchema, output, 'restore');
  await printReport(outcome, opts.json, ` (filed under ${printable(localTargetName(connection))})`);
  return outcome;
}

/**
 * `--set`: the set's roles, then every member database, into the target server
 * (cli/server-sets.ts). Refused before any change when a member's database has objects there.
 */
async function restoreSetCommand(opts: RestoreOptions): Promise<RunOutcome> {
  const given = [
    opts.backup !== undefined && '--backup',
    catalogNameOption(opts) !== undefined && '--name',
    opts.aws && '--aws',
    opts.mode !== 'create' && '--mode',
    opts.schema.length > 0 && '--schema',
    opts.table.length > 0 && '--table',
    opts.role !== undefined && '--role',
  ].filter(Boolean);
  if (given.length) {
    throw new PgferryError(
      'InvalidInput',
      `--set restores whole databases of a set, locally: not with ${given.join(', ')}`,
    );
  }
  const { connection, password: urlPassword } = parseServerUrl(opts.target, '--target');
  const password = localPassword(urlPassword, 'target', process.env);
  const store = normaliseStoreUrl(opts.store);
  const set = await resolveSet(openStore(store), opts.set as string);
  const { restoreSet } = await import('../server-sets');
  const result = await runLocally('restore', opts.verbose, (signal, display) =>
    restoreSet(
      set,
      { store, target: connection, password, ...(opts.jobs ? { jobs: opts.jobs } : {}) },
      { signal, onNotice: display.onNotice },
    ),
  );
  for (const outcome of result.restored) {
    process.stdout.write(
      `restored ${outcome.backupId} into ${printable(outcome.target.database)} in ${outcome.totalSeconds.toFixed(1)}s: ` +
        `${outcome.checksums} checksums verified, ${outcome.tables} table row counts match\n`,
    );
  }
  if (result.failed) {
    const notStarted = set.members.length - result.restored.length - 1;
    throw new PgferryError(
      'RestoreFailed',
      `restoring set ${set.id}: ${printable(result.failed.database)} failed: ${result.failed.message}` +
        ` (${result.restored.length} databases restored before it${notStarted ? `, ${notStarted} not started` : ''})`,
    );
  }
  process.stdout.write(
    `restored set ${set.id}: ${set.members.length} databases and the roles of ${set.source.host}:${set.source.port}\n`,
  );
  return {
    store,
    key: setManifestKey(set.id),
    databases: set.members.map((m) => ({ database: m.database, backupId: m.backupId })),
  };
}

/** The restore workflow's input, the same locally and on AWS. */
function restoreRequest(opts: RestoreOptions & { backup: string }, target: Connection): RestoreRequest {
  const input: RestoreRequestInput = {
    store: normaliseStoreUrl(opts.store),
    backup: opts.backup,
    name: catalogNameOption(opts),
    target,
    mode: opts.mode as RestoreRequestInput['mode'],
    jobs: opts.jobs,
    withGlobals: opts.withGlobals,
    noOwner: !opts.owner,
    noAcl: !opts.acl,
    role: opts.role,
    schemas: opts.schema,
    tables: opts.table,
    force: opts.force,
    allowDowngrade: opts.allowDowngrade,
    safetyBackup: opts.safetyBackup,
    terminateConnections: opts.terminateConnections,
    toastCompression: opts.toastCompression as RestoreRequestInput['toastCompression'],
  };
  return parsePayload(RestoreRequestSchema, input, 'restore request');
}

/** One line of what was restored, or with `--json` the report the workflow's output names. */
async function printReport(outcome: RestoreOutcome, json: boolean, filedUnder = ''): Promise<void> {
  for (const warning of outcome.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
  if (outcome.backupScope) {
    process.stderr.write(
      `partial backup: ${outcome.backupId} holds only ${printable(describeDumpScope(outcome.backupScope))}; nothing outside it was restored\n`,
    );
  }
  if (outcome.safetyBackupId)
    process.stderr.write(
      `safety backup of the target before it was replaced: ${outcome.safetyBackupId}${filedUnder}\n`,
    );
  if (json) {
    const report = await readDocument(outcome, RestoreReportSchema, 'restore report');
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `restored ${outcome.backupId} into ${outcome.target.database} in ${outcome.totalSeconds.toFixed(1)}s: ` +
      `${outcome.checksums} checksums verified, ${outcome.tables} table row counts match\n`,
  );
}
