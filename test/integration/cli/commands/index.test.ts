/**
 * The CLI loads only the command that runs (cli/commands/index.ts): `pgferry --version` and
 * `pgferry --help` load no command module and no zod schema, a command loads its own module and
 * not the others', and what the user sees is the same as with every command loaded.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { COMMANDS } from '../../../../cli/commands';
import { REPO, runCli, runNodeScript } from '../../../support/cli';

/** Runs the built CLI's `main` on `args` in a child process; prints the modules it loaded. */
const PROBE = `
const path = require('node:path');
process.stdout.write = () => true;
// At exit: a command's --help ends the process from within commander.
process.on('exit', () => {
  const loaded = Object.keys(require.cache).map((file) => path.relative(${JSON.stringify(REPO)}, file));
  process.stderr.write(JSON.stringify(loaded));
});
require(${JSON.stringify(path.join(REPO, 'dist', 'cli', 'main.js'))}).main(['node', 'pgferry', ...process.argv.slice(2)]);
`;

function probeFile(source: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-lazy-')), 'probe.js');
  writeFileSync(file, source);
  return file;
}

async function modulesLoadedBy(...args: string[]): Promise<string[]> {
  const result = await runNodeScript(probeFile(PROBE), args);
  return JSON.parse(result.stderr) as string[];
}

/** The command modules among `loaded` (cli/commands/<command>.js; not index.js or shared options). */
const commandModules = (loaded: string[]) =>
  loaded.filter((file) => COMMANDS.some(({ name }) => file === `dist/cli/commands/${name}.js`)).sort();
const zod = (loaded: string[]) => loaded.filter((file) => file.includes('node_modules/zod/'));

test.each([['--version'], ['--help'], ['help']])(
  'pgferry %s loads no command module and no zod',
  async (arg) => {
    const loaded = await modulesLoadedBy(arg);
    expect(loaded).toContain('dist/cli/main.js');
    expect(commandModules(loaded)).toEqual([]);
    expect(zod(loaded)).toEqual([]);
  },
);

test("a command loads its own module and not the others'", async () => {
  expect(commandModules(await modulesLoadedBy('prune', '--help'))).toEqual(['dist/cli/commands/prune.js']);
  expect(commandModules(await modulesLoadedBy('help', 'verify'))).toEqual(['dist/cli/commands/verify.js']);
});

test('the help and the completion script are those of the fully loaded program', async () => {
  // The root help lists every command by the line its module gives it, in the same order.
  const main = JSON.stringify(path.join(REPO, 'dist', 'cli', 'main.js'));
  const helps = await runNodeScript(
    probeFile(`const { buildProgram } = require(${main});
      const full = buildProgram().helpInformation();
      const lazy = buildProgram(undefined, { command: undefined }).helpInformation();
      process.stdout.write(JSON.stringify({ full, lazy }));`),
    [],
  );
  const { full, lazy } = JSON.parse(helps.stdout) as { full: string; lazy: string };
  expect(full).toMatch(/\n {2}backup +Back up one database/);
  expect(full).toMatch(/\n {2}completion <shell> +Print a shell completion script/);
  expect(lazy).toBe(full);
  // A command's help has its options; the completion script knows every command's options.
  expect((await runCli(['help', 'backup'])).stdout).toContain('--exclude-table-data <pattern>');
  const bash = await runCli(['completion', 'bash']);
  expect(bash.code).toBe(0);
  expect(bash.stdout).toContain('--exclude-table-data');
  expect(bash.stdout).toContain('--freeze-source');
});
