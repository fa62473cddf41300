/**
 * The completion scripts, rendered from a plain description of commands: each is valid for its
 * shell (`bash -n`, and `zsh -n`/`fish -n` where those shells are installed), survives quotes,
 * brackets and colons in descriptions, and bash — driven through `complete`'s own function —
 * offers the commands, a command's options and an option's choices.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type CommandSpec, renderCompletion, SHELLS, type Shell } from '../../../cli/completion-scripts';

const option = (long: string, extra: Partial<CommandSpec['options'][number]> = {}) => ({
  long,
  description: `it's [odd]: "quoted" \\ $HOME \`x\``,
  takesValue: false,
  choices: [],
  folder: false,
  repeatable: false,
  ...extra,
});

const COMMANDS: CommandSpec[] = [
  {
    name: 'restore',
    description: "Restore: it's a test",
    options: [
      option('--store', { takesValue: true, folder: true }),
      option('--mode', { takesValue: true, choices: ['create', 'clean'] }),
      option('--target', { takesValue: true }),
      option('--schema', { takesValue: true, repeatable: true }),
      option('--force'),
      option('--help'),
    ],
    argumentChoices: [],
  },
  { name: 'completion', description: 'Print a script', options: [option('--help')], argumentChoices: SHELLS },
];

const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-completion-'));

function scriptFile(shell: Shell): string {
  const file = path.join(dir, `ferry.${shell}`);
  writeFileSync(file, renderCompletion('ferry', COMMANDS, shell));
  return file;
}

function installed(shell: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
}

/** What bash's completion function offers for the words typed so far (the last one being completed). */
function bashOffers(script: string, words: string[]): string[] {
  const program = `source ${JSON.stringify(script)}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_ferry; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', program], { cwd: dir, encoding: 'utf8' }).split('\n').filter(Boolean);
}

test.each(SHELLS)('the %s script is valid for its shell', (shell) => {
  const file = scriptFile(shell);
  if (!installed(shell)) {
    console.warn(`${shell} is not installed: its script's syntax is not checked`);
    return;
  }
  expect(spawnSync(shell, ['-n', file], { encoding: 'utf8' }).stderr).toBe('');
});

test('bash offers the commands, a command options, and an option its choices', () => {
  const file = scriptFile('bash');
  expect(bashOffers(file, ['ferry', ''])).toEqual(['restore', 'completion', '--help', '--version']);
  expect(bashOffers(file, ['ferry', 're'])).toEqual(['restore']);
  expect(bashOffers(file, ['ferry', 'restore', '--'])).toEqual([
    '--store',
    '--mode',
    '--target',
    '--schema',
    '--force',
    '--help',
  ]);
  expect(bashOffers(file, ['ferry', 'restore', '--mode', ''])).toEqual(['create', 'clean']);
  expect(bashOffers(file, ['ferry', 'restore', '--target', ''])).toEqual([]);
  expect(bashOffers(file, ['ferry', 'completion', 'b'])).toEqual(['bash']);
});

test('fish completes an option and its choices', () => {
  if (!installed('fish')) return;
  const file = scriptFile('fish');
  const offers = (line: string) =>
    execFileSync('fish', ['-c', `source ${file}; complete -C ${JSON.stringify(line)}`], { encoding: 'utf8' });
  expect(offers('ferry restore --mo')).toMatch(/^--mode\t/m);
  expect(offers('ferry restore --mode ').split('\n').filter(Boolean).sort()).toEqual(['clean', 'create']);
  expect(offers('ferry ')).toMatch(/^restore\tRestore: it's a test$/m);
});
