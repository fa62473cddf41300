/**
 * How `pgferry --help` reads: every command's examples, required options marked, descriptions
 * wrapped to the terminal (80 columns when the output is not one), and no defaults that only a
 * programmer needs (`false` on a switch, `[]` on a repeatable option). Commander renders the help;
 * this module only configures it, and `command-reference.ts` renders docs/commands.md from the
 * same definitions and examples.
 */
import { type Argument, type Command, Help, type Option } from 'commander';
import { EXAMPLES, type Example, shellLines } from './examples';

export type { Example } from './examples';

/** The examples of `command` (a subcommand of the program, or the program itself). */
export function examplesOf(command: Command): readonly Example[] {
  return EXAMPLES[command.parent ? command.name() : ''] ?? [];
}

/** Terms longer than this share of the width get their description on the next line. */
const MAX_TERM_SHARE = 0.4;

/**
 * Commander's help with pgferry's choices (given to `configureHelp`, which subcommands inherit):
 * required options marked, only defaults a user acts on, choices listed, and a term column that
 * never squeezes the descriptions below readable width — a long term such as
 * `--scale-service <cluster/service:count>` puts its description on the line below.
 */
export const HELP_CONFIGURATION: Partial<Help> = {
  optionDescription(option: Option): string {
    return describeOption(option, '(required)');
  },
  argumentDescription(argument: Argument): string {
    return describeArgument(argument);
  },
  // A command in the program's list is its name and arguments: every command has options, so
  // commander's `[options]` after each said nothing — and the list is drawn before the commands'
  // modules, and so their options, are loaded (cli/commands/index.ts).
  subcommandTerm(cmd: Command): string {
    return [cmd.name(), ...cmd.registeredArguments.map(argumentTerm)].join(' ');
  },
  padWidth(this: Help, cmd: Command, helper: Help): number {
    return Math.min(Help.prototype.padWidth.call(this, cmd, helper), maxTermWidth(this.helpWidth ?? 80));
  },
  formatItem(this: Help, term: string, termWidth: number, description: string, helper: Help): string {
    const format = (t: string, width: number) =>
      Help.prototype.formatItem.call(this, t, width, description, helper);
    const helpWidth = this.helpWidth ?? 80;
    // A word too long for the description column (a URL template) gets the whole width below the term.
    const longestWord = Math.max(0, ...description.split(/\s+/).map((w) => helper.displayWidth(w)));
    if (longestWord > helpWidth - termWidth - 4) return `  ${term}\n${format('', 2)}`;
    if (helper.displayWidth(term) <= termWidth || !description) return format(term, termWidth);
    return `  ${term}\n${format('', termWidth)}`;
  },
};

/** `<shell>`, `[command]`, `<files...>`: an argument as commander writes it in a usage line. */
function argumentTerm(argument: Argument): string {
  const name = argument.name() + (argument.variadic ? '...' : '');
  return argument.required ? `<${name}>` : `[${name}]`;
}

function maxTermWidth(helpWidth: number): number {
  return Math.max(20, Math.floor(helpWidth * MAX_TERM_SHARE));
}

/**
 * An option's description with what a user needs besides: `required` (from commander's
 * `mandatory`, so an option made optional elsewhere loses the mark), the choices, and the default
 * when it is a value (never a switch's `false` or a repeatable option's `[]`).
 */
export function describeOption(option: Option, requiredMark: string): string {
  const extras: string[] = [];
  if (option.argChoices) extras.push(`one of: ${option.argChoices.join(', ')}`);
  const value = option.defaultValue as unknown;
  const meaningful =
    value !== undefined &&
    !option.negate &&
    typeof value !== 'boolean' &&
    !(Array.isArray(value) && value.length === 0);
  if (meaningful)
    extras.push(
      `default: ${option.defaultValueDescription ?? (typeof value === 'string' ? value : JSON.stringify(value))}`,
    );
  const parts = [
    option.mandatory ? requiredMark : '',
    option.description,
    extras.length ? `(${extras.join('; ')})` : '',
  ];
  return parts.filter(Boolean).join(' ');
}

/** An argument's description and its choices. */
export function describeArgument(argument: Argument): string {
  const choices = argument.argChoices ? ` (one of: ${argument.argChoices.join(', ')})` : '';
  return `${argument.description}${choices}`;
}

/**
 * The "Examples:" section of `command`'s help, each example's line broken before its options
 * (with a shell continuation) where it would run past `helpWidth`; empty when it has none.
 */
export function renderExamples(command: Command, helpWidth: number): string {
  const examples = examplesOf(command);
  if (examples.length === 0) return '';
  const helper = Object.assign(new Help(), { helpWidth });
  const lines = ['', 'Examples:'];
  for (const example of examples) {
    lines.push(`  # ${helper.boxWrap(example.does, helpWidth - 4).replace(/\n/g, '\n  # ')}`);
    lines.push(...shellLines(example.line, helpWidth - 2).map((line) => `  ${line}`));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Configures `program`'s help: call it before adding commands (they inherit the configuration),
 * and {@link addExamples} after.
 */
export function configureHelp(program: Command): Command {
  return program.configureHelp(HELP_CONFIGURATION);
}

/** Adds each command's examples after its help (commander's `addHelpText`), at the help's width. */
export function addExamples(program: Command): void {
  for (const command of [program, ...program.commands]) {
    if (examplesOf(command).length === 0) continue;
    command.addHelpText('after', (context) => renderExamples(command, helpWidthOf(command, context.error)));
  }
}

/** The width commander wraps `command`'s help to: the terminal's columns, else 80. */
export function helpWidthOf(command: Command, error = false): number {
  const output = command.configureOutput();
  const configured = command.configureHelp().helpWidth;
  return configured ?? (error ? output.getErrHelpWidth?.() : output.getOutHelpWidth?.()) ?? 80;
}
