/**
 * `pgferry`: back up PostgreSQL databases by running pgferry's Step Functions workflows on this
 * machine (the same definitions that run on AWS). Each command lives in `commands/`.
 */
import { Command } from 'commander';
import { errorMessage } from '../core/errors';
import { PGFERRY_VERSION } from '../core/version';
import { type AwsAccess, defaultAwsAccess } from './aws/clients';
import { registerBackup } from './commands/backup';
import { registerList } from './commands/list';
import { registerMigrate } from './commands/migrate';
import { registerPrune } from './commands/prune';
import { registerRestore } from './commands/restore';
import { registerShow } from './commands/show';
import { registerStatus } from './commands/status';
import { registerVerify } from './commands/verify';
import { InterruptedCommand } from './interrupts';
import { printable } from './output';
import { addProfileOptions, applyProfile } from './profile';

/** `aws`: how `--aws` reaches AWS (tests give recorded responses). */
export function buildProgram(aws: AwsAccess = defaultAwsAccess()): Command {
  const program = new Command('pgferry')
    .description(
      'Backups of PostgreSQL databases you can restore: checksummed, streamed, run by Step Functions workflows',
    )
    .version(PGFERRY_VERSION)
    .configureOutput({ outputError: (str, write) => write(`pgferry: ${str.replace(/^error: /, '')}`) });
  registerBackup(program, aws);
  registerList(program, aws);
  registerShow(program);
  registerStatus(program);
  registerPrune(program);
  registerRestore(program, aws);
  registerVerify(program, aws);
  registerMigrate(program, aws);
  // Store, source and target from the environment or the config file where no flag gives them.
  addProfileOptions(program);
  program.hook('preAction', (_program, command) => applyProfile(command));
  return program;
}

/** Runs the CLI; errors become one line on stderr and exit status 1 (128 + N when stopped by signal N). */
export async function main(argv: string[] = process.argv, aws?: AwsAccess): Promise<void> {
  const program = buildProgram(aws);
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      process.exitCode = e.exitCode ?? 2;
      return;
    }
    process.stderr.write(`pgferry: ${printable(oneLine(errorMessage(err)))}\n`);
    // An interrupted command exits as the shell expects of the signal (130 for SIGINT).
    process.exitCode = err instanceof InterruptedCommand ? err.exitCode : 1;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

if (require.main === module) void main();
