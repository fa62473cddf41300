import { spawn } from 'node:child_process';
import { type Command, Option } from 'commander';
import { formatCompression, parseCompression } from '../../core/compression';
import { parseConnectionUrl, passwordEnvVar } from '../../core/connection';
import {
  type Connection,
  type MigrateOutcome,
  MigrateOutcomeSchema,
  type MigratePlan,
  MigrateReportSchema,
  type MigrateRequest,
  type MigrateRequestInput,
  MigrateRequestSchema,
  parsePayload,
} from '../../core/contracts';
import { type Credentials, localPassword } from '../../core/credentials';
import { PgferryError } from '../../core/errors';
import { normaliseStoreUrl } from '../../core/store';
import type { AwsAccess } from '../aws/clients';
import { type AwsOptions, addAwsOptions, awsConnection } from '../aws/options';
import { parseDurationMs } from '../duration';
import { runLocally } from '../interrupts';
import { configureLogging, option, parseJobs, toastCompressionOption } from '../options';
import { parseOutcome, readDocument } from '../outcomes';
import { formatBytes, printable } from '../output';
import { withRunHooks } from '../run-hooks';
import { commandSummary } from './index';

export function registerMigrate(program: Command, aws: AwsAccess): void {
  const collect = (value: string, previous: string[]) => [...previous, value];
  const command = program
    .command('migrate')
    .description(commandSummary('migrate'))
    .requiredOption('--source <url>', 'postgres://user:password@host:port/database')
    .requiredOption(
      '--target <url>',
      'postgres://user:password@host:port/database (with --all-databases, any database of the target server)',
    )
    .requiredOption(
      '--store <store>',
      'where the migration leaves its backup: a folder, file:///abs/dir or s3://bucket/prefix',
    )
    .option(
      '--name <name>',
      "the catalog name to file the backup under (one database; default: the database's name)",
    )
    .option('--all-databases', 'every non-template database of the source server, and its roles', false)
    .option('--freeze-source', 'make the source read-only from before the dump until the end', false)
    .option(
      '--online',
      'copy while the source takes writes, apply the changes since by logical replication, and freeze the source only for the cutover (one database; the source needs wal_level=logical)',
      false,
    )
    .option(
      '--replica-identity-full',
      'with --online: give tables without a primary key REPLICA IDENTITY FULL for the migration (each update and delete then logs the whole old row)',
      false,
    )
    .option(
      '--unfreeze-source-after',
      'with --online: make the source writable again after the cutover (by default it stays read-only until pgferry unfreeze)',
      false,
    )
    // Both defined, neither given leaves it undefined: the preflight decides (auto).
    .option(
      '--schema-test',
      'always restore the schema alone into a scratch database on the target first (default: when the migration changes something before its own schema step: --freeze-source, --online, an existing target, --all-databases, services to scale down)',
    )
    .option('--no-schema-test', 'never run the schema test')
    .option('--force', 'replace a target database that exists and is not empty', false)
    .option(
      '--jobs <n>',
      'COPY sessions loading the data, and parallel pg_restore jobs for indexes and constraints (default: the number of cores)',
      option(parseJobs),
    )
    .option('--with-role-passwords', "copy roles' password hashes too (needs a superuser source)", false)
    .addOption(
      new Option(
        '--compress <codec[:level]>',
        "the archived backup's compression: none (the dump as pg_dump wrote it: the least CPU), zstd[:1-19], gzip[:1-9] or lz4[:1-12]",
      )
        .default('none')
        .argParser(option((v) => formatCompression(parseCompression(v)))),
    )
    .option(
      '--lock-wait-timeout <duration>',
      'fail, naming who holds it, when a table lock on the source is not granted within this (e.g. 30s, 5min; default 5min)',
      option(parseDurationMs),
    )
    .option(
      '--on-cutover <command>',
      'locally: a shell command run after verification, before the source is unfrozen, with PGFERRY_TARGET_URL (no password) and PGPASSWORD in its environment',
    )
    .addOption(toastCompressionOption())
    .option('--json', 'print the migrate report as JSON', false)
    .option('--verbose', "print the workflow's logs on stderr", false);
  addAwsOptions(command)
    .option('--source-secret-arn <arn>', "with --aws: the Secrets Manager secret with --source's password")
    .option('--target-secret-arn <arn>', "with --aws: the Secrets Manager secret with --target's password")
    .option('--cutover-secret-arn <arn>', "with --aws: the applications' secret to point at the target")
    .option(
      '--scale-service <cluster/service:count>',
      'with --aws: an ECS service scaled to 0 before the freeze and to count after the cutover (repeatable)',
      collect,
      [],
    )
    .action(withRunHooks('migrate', (opts: MigrateOptions) => migrateCommand(opts, aws)));
}

interface MigrateOptions extends AwsOptions {
  source: string;
  target: string;
  store: string;
  name?: string;
  allDatabases: boolean;
  freezeSource: boolean;
  online: boolean;
  replicaIdentityFull: boolean;
  unfreezeSourceAfter: boolean;
  schemaTest?: boolean;
  force: boolean;
  jobs?: number;
  withRolePasswords: boolean;
  compress: string;
  lockWaitTimeout?: number;
  toastCompression: string;
  onCutover?: string;
  json: boolean;
  verbose: boolean;
  sourceSecretArn?: string;
  targetSecretArn?: string;
  cutoverSecretArn?: string;
  scaleService: string[];
}

async function migrateCommand(opts: MigrateOptions, aws: AwsAccess): Promise<MigrateOutcome> {
  configureLogging(opts.verbose);
  if (opts.aws) {
    if (opts.onCutover !== undefined) {
      throw new PgferryError(
        'InvalidInput',
        '--on-cutover runs only locally: with --aws use --cutover-secret-arn or --scale-service',
      );
    }
    const request = migrateRequest(
      opts,
      awsConnection(opts.source, '--source', { passwordSecretArn: opts.sourceSecretArn }),
      awsConnection(opts.target, '--target', { passwordSecretArn: opts.targetSecretArn }),
    );
    const { runOnAws } = await import('../aws');
    const outcome = parseOutcome(
      MigrateOutcomeSchema,
      await runOnAws('migrate', request, opts, aws),
      'migrate',
    );
    await printReport(outcome, opts.json);
    return outcome;
  }
  for (const flag of ['sourceSecretArn', 'targetSecretArn', 'cutoverSecretArn', 'stack'] as const) {
    if (opts[flag] !== undefined)
      throw new PgferryError('InvalidInput', `--${kebab(flag)} is for --aws only`);
  }
  if (opts.scaleService.length) throw new PgferryError('InvalidInput', '--scale-service is for --aws only');
  const source = parseConnectionUrl(opts.source, '--source');
  const target = parseConnectionUrl(opts.target, '--target');
  const credentials: Credentials = {
    source: localPassword(source.password, 'source', process.env),
    target: localPassword(target.password, 'target', process.env),
  };
  const request = migrateRequest(opts, source.connection, target.connection);
  const { runMigrateWorkflow } = await import('../local-executor');
  const output = await runLocally('migrate', opts.verbose, (signal, display) =>
    runMigrateWorkflow(request, {
      credentials,
      signal,
      ...display,
      onPlan: (plan) => printPlan(plan as MigratePlan),
      runCutoverCommand: (plan) => {
        display.close(); // the command's own output starts on a clean line
        return runCutoverCommand(opts.onCutover ?? '', plan as MigratePlan, credentials.target);
      },
    }),
  );
  const outcome = parseOutcome(MigrateOutcomeSchema, output, 'migrate');
  await printReport(outcome, opts.json);
  return outcome;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The migrate workflow's input, the same locally and on AWS. */
function migrateRequest(opts: MigrateOptions, source: Connection, target: Connection): MigrateRequest {
  const services = opts.scaleService.map((spec) => {
    const m = /^([^/]+)\/([^:]+):(\d+)$/.exec(spec);
    if (!m)
      throw new PgferryError('InvalidInput', `--scale-service must be cluster/service:count (got ${spec})`);
    return { cluster: m[1], service: m[2], desiredCount: Number(m[3]) };
  });
  const cutover = {
    ...(opts.cutoverSecretArn ? { secretArn: opts.cutoverSecretArn } : {}),
    ...(services.length ? { ecsServices: services } : {}),
    ...(opts.onCutover ? { command: opts.onCutover } : {}),
  };
  const input: MigrateRequestInput = {
    ...(opts.name === undefined ? {} : { name: opts.name }),
    source,
    target,
    store: normaliseStoreUrl(opts.store),
    allDatabases: opts.allDatabases,
    freezeSource: opts.freezeSource,
    online: opts.online,
    replicaIdentityFull: opts.replicaIdentityFull,
    unfreezeSourceAfter: opts.unfreezeSourceAfter,
    ...(opts.schemaTest === undefined ? {} : { schemaTest: opts.schemaTest }),
    force: opts.force,
    jobs: opts.jobs,
    withRolePasswords: opts.withRolePasswords,
    compression: parseCompression(opts.compress),
    toastCompression: opts.toastCompression as MigrateRequestInput['toastCompression'],
    ...(Object.keys(cutover).length ? { cutover } : {}),
    ...(opts.lockWaitTimeout === undefined ? {} : { lockWaitTimeoutMs: opts.lockWaitTimeout }),
  };
  return parsePayload(MigrateRequestSchema, input, 'migrate request');
}

/** Printed before any data moves: what will be moved and how long it should take. */
function printPlan(plan: MigratePlan): void {
  const { estimate } = plan;
  process.stderr.write(
    `migrate: ${plan.databases.map((d) => d.source.database).join(', ')} from PostgreSQL ${plan.sourceServer.version} ` +
      `to ${plan.targetServer.version}: source ${formatBytes(estimate.bytes)}, estimated ${formatDuration(estimate.seconds)} ` +
      `(${estimate.basis === 'measured' ? 'measured' : 'default'} ${formatBytes(estimate.bytesPerSecond)}/s)\n`,
  );
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/**
 * `--on-cutover`: the command runs in a shell with this process's environment (pgferry's own
 * password variables removed), `PGFERRY_TARGET_URL` and `PGFERRY_SOURCE_URL` without passwords,
 * and the target's password as `PGPASSWORD`. Its failure fails the migration (the source is
 * unfrozen, the target kept).
 */
async function runCutoverCommand(
  command: string,
  plan: MigratePlan,
  targetPassword: string | undefined,
): Promise<void> {
  const url = (c: Connection) =>
    `postgres://${encodeURIComponent(c.user)}@${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}/${encodeURIComponent(c.database)}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env[passwordEnvVar('source')];
  delete env[passwordEnvVar('target')];
  delete env.PGPASSWORD;
  env.PGFERRY_TARGET_URL = url(plan.databases[0].target);
  env.PGFERRY_SOURCE_URL = url(plan.databases[0].source);
  env.PGFERRY_MIGRATE_ID = plan.migrateId;
  if (targetPassword !== undefined) env.PGPASSWORD = targetPassword;
  const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new PgferryError('MigrateFailed', `the cutover command failed (exit status ${code})`);
}

/** One line of what was migrated, or with `--json` the report the workflow's output names. */
async function printReport(outcome: MigrateOutcome, json: boolean): Promise<void> {
  if (json) {
    const report = await readDocument(outcome, MigrateReportSchema, 'migrate report');
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const downtime =
    outcome.writeDowntimeSeconds === undefined
      ? ''
      : `, source read-only for ${outcome.writeDowntimeSeconds.toFixed(1)}s`;
  process.stdout.write(
    `migrated ${outcome.databases.map((d) => `${d.database} → ${d.targetDatabase} (backup ${d.backupId})`).join(', ')} ` +
      `from PostgreSQL ${outcome.source.serverVersion} to ${outcome.target.serverVersion} in ${outcome.totalSeconds.toFixed(1)}s${downtime}: ` +
      `${outcome.tables} table row counts, sequences and object counts match\n`,
  );
  const test = outcome.schemaTest;
  if (test) {
    process.stdout.write(
      test.status === 'skipped'
        ? `no schema test: ${test.reason}\n`
        : `schema test passed before any data moved (run because ${test.reason})\n`,
    );
  }
  if (outcome.sourceLeftFrozen) {
    process.stdout.write(
      'the source stays read-only (a write to it now would be lost): pgferry unfreeze --source <url> makes it writable\n',
    );
  }
  const withoutPassword = outcome.rolesCreatedWithoutPassword ?? [];
  if (withoutPassword.length > 0) process.stdout.write(describeRolesWithoutPassword(withoutPassword));
}

/**
 * The login roles a migration created on the target without a password (the source's were not
 * copied: no `--with-role-passwords`, or not a superuser), and how to give them one: until then
 * they cannot log in with a password.
 */
export function describeRolesWithoutPassword(roles: readonly string[]): string {
  // Quoted always: a bare name is folded to lower case, and some (`user`) are keywords.
  const names = roles.map((role) => printable(`"${role.replace(/"/g, '""')}"`));
  return (
    `created without a password, so they cannot log in with one yet: ${names.join(', ')}\n` +
    `  set each on the target: ALTER ROLE ${names[0]} PASSWORD '…';  (or migrate with --with-role-passwords)\n`
  );
}
