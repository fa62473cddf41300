/**
 * The command reference (`docs/commands.md`), rendered from the CLI's own commander definitions so
 * that every flag has one source: `npm run docs` writes it, and a unit test fails when the file
 * and the definitions disagree.
 */
import type { Command, Option } from 'commander';

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
  for (const option of help.visibleOptions(command)) {
    if (option.long === '--help') continue;
    lines.push(`| \`${option.flags}\` | ${cell(describe(option))} |`);
  }
  lines.push('');
  return lines;
}

function describe(option: Option): string {
  const parts = [option.description];
  if (option.mandatory) parts.unshift('**required**:');
  if (option.argChoices) parts.push(`(one of: ${option.argChoices.join(', ')})`);
  // Switches default to off; only a value worth knowing is shown.
  if (option.defaultValue !== undefined && option.defaultValue !== false && !option.negate) {
    parts.push(`(default: ${option.defaultValueDescription ?? JSON.stringify(option.defaultValue)})`);
  }
  return parts.join(' ');
}

/** A table cell: one line, pipes escaped. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}
