/**
 * `pgferry <command> --help`, rendered by commander from the real definitions (commander is an ES
 * module, so the built code renders it in a child process): examples that parse as printed,
 * required options marked from commander's `mandatory`, lines within the width at 80 and 120
 * columns, no defaults that tell a user nothing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO, runCli, runNodeScript } from '../../support/cli';

interface Probe {
  commands: {
    name: string;
    options: { flags: string; mandatory: boolean }[];
    help: Record<string, string>;
  }[];
  examples: { line: string; args: string[]; error: string | null }[];
}

/**
 * Runs in the child: each command's help at 80 and 120 columns and as commander prints it to a
 * pipe, and each example parsed by a program whose actions do nothing.
 */
const PROBE = `
const { buildProgram } = require(${JSON.stringify(path.join(REPO, 'dist', 'cli', 'main.js'))});
const { EXAMPLES } = require(${JSON.stringify(path.join(REPO, 'dist', 'cli', 'examples.js'))});
function helpOf(command, width) {
  let text = '';
  command.configureOutput({ writeOut: (s) => (text += s), ...(width ? { getOutHelpWidth: () => width } : {}) });
  command.outputHelp();
  return text;
}
function argsOf(line) {
  const match = /(?:^|[\\s(])pgferry ([^>|)]*)/.exec(line);
  return match ? match[1].trim().split(/\\s+/) : [];
}
(async () => {
  // A program per width: commander keeps an output configuration once given.
  const all = (program) => [program, ...program.commands];
  const [at80, at120, piped] = [80, 120, undefined].map((width) => all(buildProgram()).map((c) => helpOf(c, width)));
  const commands = all(buildProgram()).map((c, i) => ({
    name: c.parent ? c.name() : 'pgferry',
    options: c.options.map((o) => ({ flags: o.flags, mandatory: Boolean(o.mandatory) })),
    help: { 80: at80[i], 120: at120[i], pipe: piped[i] },
  }));
  const examples = [];
  for (const example of Object.values(EXAMPLES).flat()) {
    const inert = buildProgram();
    let error = '';
    for (const c of [inert, ...inert.commands]) {
      c.exitOverride();
      c.configureOutput({ writeErr: (s) => (error += s), writeOut: () => undefined });
      if (c !== inert) c.action(() => undefined);
    }
    const args = argsOf(example.line);
    try {
      await inert.parseAsync(args, { from: 'user' });
    } catch (err) {
      error += String(err);
    }
    examples.push({ line: example.line, args, error: error || null });
  }
  process.stdout.write(JSON.stringify({ commands, examples }));
})();
`;

let probe: Probe;

beforeAll(async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-help-')), 'probe.js');
  writeFileSync(file, PROBE);
  const result = await runNodeScript(file, []);
  if (result.code !== 0) throw new Error(result.stderr);
  probe = JSON.parse(result.stdout) as Probe;
});

test('every command has examples, and every example parses with the real definitions', () => {
  for (const command of probe.commands) {
    expect([command.name, command.help[80]]).toEqual([
      command.name,
      expect.stringContaining('Examples:\n  # '),
    ]);
  }
  expect(probe.examples.length).toBeGreaterThan(15);
  for (const example of probe.examples) {
    expect(example.args[0]).toMatch(/^[a-z]+$/);
    expect([example.line, example.error]).toEqual([example.line, null]);
  }
});

test.each([80, 120])('every help stays within %i columns', (width) => {
  for (const command of probe.commands) {
    const tooWide = command.help[width].split('\n').filter((line) => line.length > width);
    expect([command.name, tooWide]).toEqual([command.name, []]);
  }
});

test('a help written to a pipe is 80 columns wide; a long term puts its description below it', () => {
  const migrate = probe.commands.find((c) => c.name === 'migrate')?.help.pipe ?? '';
  expect(Math.max(...migrate.split('\n').map((l) => l.length))).toBeLessThanOrEqual(80);
  expect(migrate).toMatch(/\n {2}--scale-service <cluster\/service:count>\n {30,}with --aws:/);
  // At 120 columns the descriptions use the width.
  const wide = probe.commands.find((c) => c.name === 'migrate')?.help[120] ?? '';
  expect(Math.max(...wide.split('\n').map((l) => l.length))).toBeGreaterThan(100);
});

test('exactly the required options are marked, and no help prints a default of false or []', () => {
  for (const command of probe.commands) {
    const text = command.help[120];
    for (const option of command.options) {
      const at = text.indexOf(`\n  ${option.flags}`);
      expect([option.flags, at]).not.toEqual([option.flags, -1]);
      const item = text.slice(at + 1, text.indexOf('\n  -', at + 1));
      expect([command.name, option.flags, item.includes('(required)')]).toEqual([
        command.name,
        option.flags,
        option.mandatory,
      ]);
    }
    expect(text).not.toMatch(/default: (false|true|\[\])/);
  }
  // --store and --source may come from PGFERRY_STORE/PGFERRY_SOURCE or the config file instead.
  const restore = probe.commands.find((c) => c.name === 'restore');
  // (--backup or --set: one of the two, which the command checks.)
  expect(restore?.options.filter((o) => o.mandatory).map((o) => o.flags)).toEqual(['--target <url>']);
});

test('restore lists its modes and TOAST methods as choices', async () => {
  const restore = (probe.commands.find((c) => c.name === 'restore')?.help[120] ?? '').replace(/\s+/g, ' ');
  expect(restore).toMatch(/--mode <mode> .*\(one of: create, clean; default: create\)/);
  expect(restore).toMatch(/one of: lz4, server-default; default: lz4/);
  const wrong = await runCli([
    'restore',
    '--store',
    '/x',
    '--backup',
    'latest',
    '--target',
    'postgres://u@h/d',
    '--mode',
    'replace',
  ]);
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).toBe(
    "pgferry: option '--mode <mode>' argument 'replace' is invalid. Allowed choices are create, clean.\n",
  );
});

describe('pgferry completion', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-completion-'));
  const installed = (shell: string) => spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;

  async function script(shell: string): Promise<string> {
    const result = await runCli(['completion', shell]);
    expect(result.stderr).toBe('');
    const file = path.join(dir, `pgferry.${shell}`);
    writeFileSync(file, result.stdout);
    return file;
  }

  test.each(['bash', 'zsh', 'fish'])('prints a %s script valid for that shell', async (shell) => {
    const file = await script(shell);
    if (installed(shell)) expect(spawnSync(shell, ['-n', file], { encoding: 'utf8' }).stderr).toBe('');
  });

  test('bash offers every command and, after one, exactly its options', async () => {
    const file = await script('bash');
    const offers = (...words: string[]) =>
      execFileSync(
        'bash',
        [
          '-c',
          `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; ` +
            `_pgferry; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { encoding: 'utf8' },
      )
        .split('\n')
        .filter(Boolean);
    const commands = probe.commands.filter((c) => c.name !== 'pgferry');
    expect(offers('pgferry', '')).toEqual([...commands.map((c) => c.name), 'help', '--help', '--version']);
    for (const command of commands) {
      const longs = command.options.map((o) => o.flags.match(/--[\w-]+/)?.[0]);
      expect([command.name, offers('pgferry', command.name, '--')]).toEqual([
        command.name,
        [...longs.filter((l) => l !== '--help'), '--help'],
      ]);
    }
    expect(offers('pgferry', 'restore', '--mode', '')).toEqual(['create', 'clean']);
    expect(offers('pgferry', 'completion', '')).toEqual(['bash', 'zsh', 'fish']);
  });

  test('an unknown shell lists the ones there are', async () => {
    const result = await runCli(['completion', 'tcsh']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "pgferry: command-argument value 'tcsh' is invalid for argument 'shell'. Allowed choices are bash, zsh, fish.\n",
    );
  });
});
