/**
 * The command reference (`docs/commands.md`), rendered from the CLI's own commander definitions so
 * that every flag has one source: `npm run docs` writes it, and a unit test fails when the file
 * and the definitions disagree.
 */
import type { Command } from 'commander';
import { describeArgument, describeOption, type Example, examplesOf } from './help';

/** Markdown for every command of `program`, in the order they are registered. */
export function renderCommandReference(program: Command): string {
  const lines = [
    '# Command reference',
    '',
    "<!-- Generated from the CLI's definitions by `npm run docs` (cli/command-reference.ts): do not edit. -->",
    '',
    `${program.description()}`,
    '',
    'Every command exits 0 on success; on failure it prints one line, `pgferry: <what went wrong>`, on',
    'stderr and exits non-zero. Options marked **required** must be given.',
    '',
  ];
  lines.push(...renderExamples(examplesOf(program)));
  for (const command of program.commands) lines.push(...renderCommand(program.name(), command));
  return `${lines.join('\n').trimEnd()}\n`;
}

function renderCommand(programName: string, command: Command): string[] {
  const help = command.createHelp();
  const lines = [
    `## \`${programName} ${command.name()}\``,
    '',
    command.description(),
    '',
    '```',
    help.commandUsage(command),
    '```',
    '',
    '| option | meaning |',
    '|---|---|',
  ];
  for (const argument of help.visibleArguments(command)) {
    lines.push(`| \`${help.argumentTerm(argument)}\` | ${cell(describeArgument(argument))} |`);
  }
  for (const option of help.visibleOptions(command)) {
    if (option.long === '--help') continue;
    lines.push(`| \`${option.flags}\` | ${cell(describeOption(option, '**required**:'))} |`);
  }
  lines.push('', ...renderExamples(examplesOf(command)));
  return lines;
}

/** A command's examples as one shell block, each line under a comment saying what it does. */
function renderExamples(examples: readonly Example[]): string[] {
  if (examples.length === 0) return [];
  const lines = ['Examples:', '', '```sh'];
  for (const example of examples) lines.push(`# ${example.does}`, example.line);
  lines.push('```', '');
  return lines;
}

/** A table cell: one line, pipes escaped. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}
