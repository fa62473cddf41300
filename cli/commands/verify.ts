import type { Command } from 'commander';
import { resolveSet } from '../../core/backup-set';
import {
  parsePayload,
  type VerifyOutcome,
  VerifyOutcomeSchema,
  VerifyReportSchema,
  VerifyRequestSchema,
} from '../../core/contracts';
import { PgferryError } from '../../core/errors';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { setManifestKey } from '../../core/store-keys';
import type { AwsAccess } from '../aws/clients';
import { type AwsOptions, addAwsOptions, refuseAwsOnlyOptions } from '../aws/options';
import { runLocally } from '../interrupts';
import { configureLogging } from '../options';
import { parseOutcome, readDocument } from '../outcomes';
import { printable } from '../output';
import { type RunOutcome, withRunHooks } from '../run-hooks';
import { catalogNameOption, DATABASE_ALIAS_HELP } from './catalog-options';
import { commandSummary } from './index';

export function registerVerify(program: Command, aws: AwsAccess): void {
  const command = program
    .command('verify')
    .description(commandSummary('verify'))
    .requiredOption('--store <store>', 'file:///abs/dir, a folder path, or s3://bucket/prefix')
    .option(
      '--backup <id|latest>',
      'the backup id, or latest (the newest complete backup filed under --name)',
    )
    .option(
      '--set <id|latest>',
      'verify every member of a backup set (pgferry backup --all-databases), or of the newest complete one',
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
  backup?: string;
  set?: string;
  name?: string;
  database?: string;
  json: boolean;
  verbose: boolean;
}

async function verifyCommand(opts: VerifyOptions, aws: AwsAccess): Promise<RunOutcome> {
  configureLogging(opts.verbose);
  refuseAwsOnlyOptions(opts);
  if (opts.set !== undefined) return verifySetCommand(opts);
  if (opts.backup === undefined) throw new Error("required option '--backup <id|latest>' not specified");
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

/** `--set`: every member of the set, each in its own throwaway server; fails when one does not pass. */
async function verifySetCommand(opts: VerifyOptions): Promise<RunOutcome> {
  const given = [
    opts.backup !== undefined && '--backup',
    catalogNameOption(opts) !== undefined && '--name',
    opts.aws && '--aws',
  ].filter(Boolean);
  if (given.length) {
    throw new PgferryError(
      'InvalidInput',
      `--set verifies every member of a set, locally: not with ${given.join(', ')}`,
    );
  }
  const store = normaliseStoreUrl(opts.store);
  const set = await resolveSet(openStore(store), opts.set as string);
  const { verifySet } = await import('../server-sets');
  const results = await runLocally('verify', opts.verbose, (signal, display) =>
    verifySet(set, store, { signal, onNotice: display.onNotice }),
  );
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ set: set.id, members: results }, null, 2)}\n`);
  } else {
    for (const r of results) {
      process.stdout.write(
        `${r.status} ${r.backupId} ${printable(r.database)}${r.message ? `: ${printable(r.message)}` : ''}\n`,
      );
    }
  }
  const failed = results.filter((r) => r.status === 'failed');
  if (failed.length) {
    throw new PgferryError(
      'RestoreFailed',
      `set ${set.id}: ${failed.length} of ${results.length} members failed verification: ${failed.map((r) => printable(r.database)).join(', ')}`,
    );
  }
  if (!opts.json) process.stdout.write(`verified set ${set.id}: ${results.length} databases passed\n`);
  return {
    store,
    key: setManifestKey(set.id),
    databases: set.members.map((m) => ({ database: m.database, backupId: m.backupId })),
  };
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
