import { type Command, Option } from 'commander';
import { localTargetName } from '../../core/catalog-name';
import { parseConnectionUrl } from '../../core/connection';
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
import { describeDumpScope } from '../../core/postgres/dump-scope';
import { normaliseStoreUrl } from '../../core/store';
import type { AwsAccess } from '../aws/clients';
import { type AwsOptions, addAwsOptions, awsConnection, refuseAwsOnlyOptions } from '../aws/options';
import { runLocally } from '../interrupts';
import { configureLogging, option, toastCompressionOption } from '../options';
import { parseOutcome, readDocument } from '../outcomes';
import { printable } from '../output';
import { withRunHooks } from '../run-hooks';
import { catalogNameOption, DATABASE_ALIAS_HELP } from './catalog-options';
import { commandSummary } from './index';

export function registerRestore(program: Command, aws: AwsAccess): void {
  const collect = (value: string, previous: string[]) => [...previous, value];
  const command = program
    .command('restore')
    .description(commandSummary('restore'))
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .requiredOption(
      '--backup <id|latest>',
      'the backup id, or latest (the newest complete backup filed under --name)',
    )
    .option(
      '--name <name>',
      "the backup's catalog name (needed with latest when the store holds several; by default a database's name)",
    )
    .option('--database <name>', DATABASE_ALIAS_HELP)
    .requiredOption('--target <url>', 'where to restore: postgres://user:password@host:port/database')
    .addOption(
      new Option('--mode <mode>', 'create: a new database; clean: replace the contents of an existing one')
        .choices(['create', 'clean'])
        .default('create'),
    )
    .option(
      '--jobs <n>',
      'parallel pg_restore jobs (default: the number of cores)',
      option((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 64)
          throw new Error('--jobs must be a whole number from 1 to 64');
        return n;
      }),
    )
    .option(
      '--with-globals',
      "create the backup's roles that the target lacks (existing ones are left alone)",
      false,
    )
    .option('--no-owner', 'do not set object owners (everything is owned by the connecting user)')
    .option('--no-acl', 'do not restore privileges (GRANT/REVOKE)')
    .option('--role <name>', 'run the restore as this role (SET ROLE)')
    .option('--schema <name>', 'restore only this schema (repeatable)', collect, [])
    .option('--table <name>', 'restore only this table (repeatable)', collect, [])
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
  backup: string;
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

async function restoreCommand(opts: RestoreOptions, aws: AwsAccess): Promise<RestoreOutcome> {
  configureLogging(opts.verbose);
  refuseAwsOnlyOptions(opts);
  if (opts.aws) {
    const request = restoreRequest(opts, awsConnection(opts.target, '--target', opts));
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
  const request = restoreRequest(opts, connection);
  const { runRestoreWorkflow } = await import('../local-executor');
  const output = await runLocally('restore', opts.verbose, (signal, display) =>
    runRestoreWorkflow(request, { credentials, signal, ...display }),
  );
  const outcome = parseOutcome(RestoreOutcomeSchema, output, 'restore');
  await printReport(outcome, opts.json, ` (filed under ${printable(localTargetName(connection))})`);
  return outcome;
}

/** The restore workflow's input, the same locally and on AWS. */
function restoreRequest(opts: RestoreOptions, target: Connection): RestoreRequest {
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
