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
import { interruptible, printNotice } from '../interrupts';
import { configureLogging } from '../options';
import { parseOutcome, readDocument } from '../outcomes';

export function registerVerify(program: Command, aws: AwsAccess): void {
  const command = program
    .command('verify')
    .description('Restore drill: restore a backup into a throwaway server of its major and check it')
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .requiredOption(
      '--backup <id|latest>',
      'the backup id, or latest (the newest complete backup of --database)',
    )
    .option('--database <name>', 'the backed-up database (needed with latest when the store holds several)')
    .option('--json', 'print the verification report as JSON', false)
    .option('--verbose', "print the workflow's logs on stderr", false);
  addAwsOptions(command).action(async (opts: VerifyOptions) => verifyCommand(opts, aws));
}

interface VerifyOptions extends AwsOptions {
  store: string;
  backup: string;
  database?: string;
  json: boolean;
  verbose: boolean;
}

async function verifyCommand(opts: VerifyOptions, aws: AwsAccess): Promise<void> {
  configureLogging(opts.verbose);
  refuseAwsOnlyOptions(opts);
  const request = parsePayload(
    VerifyRequestSchema,
    { store: normaliseStoreUrl(opts.store), backup: opts.backup, database: opts.database },
    'verify request',
  );
  if (opts.aws) {
    const { runOnAws } = await import('../aws');
    await printReport(
      parseOutcome(VerifyOutcomeSchema, await runOnAws('verify', request, opts, aws), 'verify'),
      opts.json,
    );
    return;
  }
  const { runVerifyWorkflow } = await import('../local-executor');
  const output = await interruptible('verify', (signal) =>
    runVerifyWorkflow(request, {
      signal,
      onNotice: printNotice,
      onPhase: (phase) => {
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[Kverify: ${phase}…`);
      },
      onTaskLog: opts.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
    }),
  );
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  await printReport(parseOutcome(VerifyOutcomeSchema, output, 'verify'), opts.json);
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
