/**
 * `pgferry`: back up PostgreSQL databases by running pgferry's Step Functions workflows on this
 * machine (the same definitions that run on AWS). Each command lives in `commands/`.
 */
import { Command, type Option } from 'commander';
import { errorMessage, oneLine } from '../core/errors';
import { PGFERRY_VERSION } from '../core/version';
import { type AwsAccess, defaultAwsAccess } from './aws/clients';
import { COMMANDS, commandNameOf } from './commands';
import { registerCompletion } from './completion';
import { addExamples, configureHelp } from './help';
import { InterruptedCommand } from './interrupts';
import { printable } from './output';
import { endRunnerAhead } from './runner';

/**
 * The CLI's commander program. `aws`: how `--aws` reaches AWS (tests give recorded responses).
 * `only`: define only this command in full, and list the others by their one line (their modules
 * are not loaded; see ./commands/index.ts); by default every command is defined in full.
 */
export function buildProgram(aws: AwsAccess = defaultAwsAccess(), only?: { command?: string }): Command {
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
  for (const entry of COMMANDS) {
    if (only === undefined || entry.name === only.command) {
      entry.register(program, aws);
    } else {
      // Listed by its line and operands only; its module is loaded when it runs.
      const listed = program.command(entry.name).description(entry.summary);
      if (entry.operands) listed.arguments(entry.operands);
    }
  }
  if (only === undefined || COMMANDS.some((entry) => entry.name === only.command)) {
    // Store, source and target from the environment or the config file where no flag gives them.
    const { addProfileOptions, applyProfile } = require('./profile') as typeof import('./profile');
    addProfileOptions(program);
    program.hook('preAction', (_program, command) => applyProfile(command));
  }
  // The completion script is generated from every command's options.
  registerCompletion(program, () => (only === undefined ? program : buildProgram(aws)));
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
  // Only the command that runs is loaded (`--version` and `--help` load none).
  const program = buildProgram(aws, { command: commandNameOf(argv.slice(2)) });
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
  } finally {
    // A runner started for a workflow that did not run (help, a bad option, a refused input).
    endRunnerAhead();
  }
}

if (require.main === module) void main();
