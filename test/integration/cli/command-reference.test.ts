/**
 * docs/commands.md is the CLI's own definitions, rendered (commander is an ES module, so the
 * built code renders it in a child process).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { REPO, runNodeScript } from '../../support/cli';

const generator = path.join(REPO, 'dist', 'scripts', 'generate-command-reference.js');

test('docs/commands.md is generated from the current CLI definitions (run `npm run docs` when this fails)', async () => {
  const rendered = await runNodeScript(generator, ['--stdout']);
  expect(rendered.stderr).toBe('');
  expect(readFileSync(path.join(REPO, 'docs', 'commands.md'), 'utf8')).toBe(rendered.stdout);
});

test('the reference marks required options and shows no default for switches', () => {
  const reference = readFileSync(path.join(REPO, 'docs', 'commands.md'), 'utf8');
  expect(reference).toMatch(/\| `--target <url>` \| \*\*required\*\*/);
  // A store or source may come from the environment or the config file instead (cli/profile.ts).
  expect(reference).toMatch(/\| `--source <url>` \| .*; required unless PGFERRY_SOURCE /);
  expect(reference).not.toMatch(/default: false/);
});
