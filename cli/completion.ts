/**
 * `pgferry completion bash|zsh|fish`: shell completion scripts generated from the CLI's own
 * commander definitions (commands, options, whether an option takes a value, its choices), so a
 * new flag is completed as soon as it exists. Hidden options are left out.
 */
import { Argument, type Command, type Option } from 'commander';
import {
  type CommandSpec,
  type OptionSpec,
  renderCompletion,
  SHELLS,
  type Shell,
} from './completion-scripts';

/** The completion script for `shell`, from `program`'s definitions. */
export function completionScript(program: Command, shell: Shell): string {
  return renderCompletion(program.name(), commandSpecs(program), shell);
}

/**
 * Registers `completion <shell>` on `program`, printing the script on stdout. `definitions`: the
 * program with every command defined in full (the CLI's own lists the others by name only).
 */
export function registerCompletion(program: Command, definitions: () => Command = () => program): void {
  program
    .command('completion')
    .description('Print a shell completion script (bash, zsh or fish), generated from these commands')
    .addArgument(new Argument('<shell>', 'the shell to complete in').choices(SHELLS))
    .action((shell: Shell) => {
      process.stdout.write(completionScript(definitions(), shell));
    });
}

function commandSpecs(program: Command): CommandSpec[] {
  const specs: CommandSpec[] = program.commands.map((command) => ({
    name: command.name(),
    description: short(command.description()),
    options: [...visibleOptions(command).map(optionSpec), helpOption()],
    argumentChoices: command.registeredArguments[0]?.argChoices ?? [],
  }));
  specs.push({
    name: 'help',
    description: 'display help for command',
    options: [],
    argumentChoices: program.commands.map((c) => c.name()),
  });
  return specs;
}

function visibleOptions(command: Command): Option[] {
  return command.options.filter((o) => !o.hidden && o.long !== undefined);
}

function optionSpec(option: Option): OptionSpec {
  const takesValue = option.required || option.optional;
  return {
    long: option.long as string,
    description: short(option.description),
    takesValue,
    choices: option.argChoices ?? [],
    folder: takesValue && /<store>/.test(option.flags),
    repeatable: Array.isArray(option.defaultValue),
  };
}

function helpOption(): OptionSpec {
  return {
    long: '--help',
    description: 'display help for command',
    takesValue: false,
    choices: [],
    folder: false,
    repeatable: false,
  };
}

/** A description's first clause, on one line: enough to tell options apart in a menu. */
function short(text: string): string {
  const clause = text
    .replace(/\s+/g, ' ')
    .split(/; | \(/)[0]
    .trim();
  return clause.length > 70 ? `${clause.slice(0, 67)}...` : clause;
}
