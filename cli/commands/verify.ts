import type { Command } from 'commander';
import {
  parsePayload,
  type VerifyOutcome,
  VerifyOutcomeSchema,
  VerifyReportSchema,
  VerifyRequestSchema,
} from '../../core/contracts';
import { normaliseStoreUrl } from '../../core/store';
import type { AwsAccess } from '../aws/clients';
import { type AwsOptions, addAwsOptions, refuseAwsOnlyOptions } from '../aws/options';
import { runLocally } from '../interrupts';
import { configureLogging } from '../options';
import { parseOutcome, readDocument } from '../outcomes';
import { withRunHooks } from '../run-hooks';
import { catalogNameOption, DATABASE_ALIAS_HELP } from './catalog-options';
import { commandSummary } from './index';

export function registerVerify(program: Command, aws: AwsAccess): void {
  const command = program
    .command('verify')
    .description(commandSummary('verify'))
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
    .option('--json', 'print the verification report as JSON', false)
    .option('--verbose', "print the workflow's logs on stderr", false);
  addAwsOptions(command).action(withRunHooks('verify', (opts: VerifyOptions) => verifyCommand(opts, aws)));
}

interface VerifyOptions extends AwsOptions {
  store: string;
  backup: string;
  name?: string;
  database?: string;
  json: boolean;
  verbose: boolean;
}

async function verifyCommand(opts: VerifyOptions, aws: AwsAccess): Promise<VerifyOutcome> {
  configureLogging(opts.verbose);
  refuseAwsOnlyOptions(opts);
  const request = parsePayload(
    VerifyRequestSchema,
    { store: normaliseStoreUrl(opts.store), backup: opts.backup, name: catalogNameOption(opts) },
    'verify request',
  );
  if (opts.aws) {
    const { runOnAws } = await import('../aws');
    const outcome = parseOutcome(VerifyOutcomeSchema, await runOnAws('verify', request, opts, aws), 'verify');
    await printReport(outcome, opts.json);
    return outcome;
  }
  const { runVerifyWorkflow } = await import('../local-executor');
  const output = await runLocally('verify', opts.verbose, (signal, display) =>
    runVerifyWorkflow(request, { signal, ...display }),
  );
  const outcome = parseOutcome(VerifyOutcomeSchema, output, 'verify');
  await printReport(outcome, opts.json);
  return outcome;
}

/** One line of what was verified, or with `--json` the report the workflow's output names. */
async function printReport(outcome: VerifyOutcome, json: boolean): Promise<void> {
  if (json) {
    const report = await readDocument(outcome, VerifyReportSchema, 'verification report');
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `verified ${outcome.backupId}: restored into PostgreSQL ${outcome.server?.version} in ` +
      `${outcome.restoreSeconds?.toFixed(1)}s, ${outcome.checksums} checksums and ` +
      `${outcome.tables} table row counts match\n`,
  );
}
