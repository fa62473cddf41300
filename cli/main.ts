/**
 * `pgferry`: back up PostgreSQL databases by running pgferry's Step Functions workflows on this
 * machine (the same definitions that run on AWS). Each command lives in `commands/`.
 */
import { Command, type Option } from 'commander';
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
import { registerUnfreeze } from './commands/unfreeze';
import { registerVerify } from './commands/verify';
import { registerCompletion } from './completion';
import { addExamples, configureHelp } from './help';
import { InterruptedCommand } from './interrupts';
import { printable } from './output';
import { addProfileOptions, applyProfile } from './profile';

/** `aws`: how `--aws` reaches AWS (tests give recorded responses). */
export function buildProgram(aws: AwsAccess = defaultAwsAccess()): Command {
  const program = new PgferryCommand('pgferry')
    .description(
      'Backups of PostgreSQL databases you can restore: checksummed, streamed, run by Step Functions workflows',
    )
    .version(PGFERRY_VERSION)
    // Commander's errors as one line (its "Did you mean" hint joins the line it explains).
    .configureOutput({
      outputError: (str, write) => write(`pgferry: ${oneLine(str.replace(/^error: /, ''))}\n`),
    });
  configureHelp(program);
  registerBackup(program, aws);
  registerList(program, aws);
  registerShow(program);
  registerStatus(program);
  registerPrune(program);
  registerRestore(program, aws);
  registerVerify(program, aws);
  registerMigrate(program, aws);
  registerUnfreeze(program);
  // Store, source and target from the environment or the config file where no flag gives them.
  addProfileOptions(program);
  program.hook('preAction', (_program, command) => applyProfile(command));
  registerCompletion(program);
  addExamples(program);
  return program;
}

/** What `PgferryCommand` calls of commander's own error reporting (not in its typings). */
interface CommanderErrors {
  unknownOption(this: Command, flag: string): never;
  missingMandatoryOptionValue(this: Command, option: Option): never;
}

/**
 * Commander, with one order of errors changed: it checks required options before unknown ones,
 * so a typo (`--stroe`) was reported as the required `--store` it was meant to be. An unknown
 * option is reported first. (Every pgferry command takes no operands, so an argument left over
 * that starts with `-` is an option commander did not know.)
 */
class PgferryCommand extends Command {
  override createCommand(name?: string): Command {
    return new PgferryCommand(name);
  }

  missingMandatoryOptionValue(option: Option): never {
    const errors = Command.prototype as unknown as CommanderErrors;
    const unknown = this.args.find((arg) => arg.startsWith('-') && arg !== '-');
    if (unknown !== undefined) errors.unknownOption.call(this, unknown);
    return errors.missingMandatoryOptionValue.call(this, option);
  }
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
