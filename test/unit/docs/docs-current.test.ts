/**
 * The docs say what is true of the tree: every test a guarantee names exists (with the named
 * test in it), and every relative link resolves. (That docs/commands.md is the CLI's own
 * definitions is checked on the built code: test/integration/cli/command-reference.test.ts.)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

const REPO = path.join(__dirname, '..', '..', '..');
const DOCS = [
  'README.md',
  ...readdirSync(path.join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');

test.each(DOCS)('every test file %s names exists', (doc) => {
  const named = [...read(doc).matchAll(/\btest\/[\w./-]+\.test\.ts\b/g)].map((m) => m[0]);
  const missing = named.filter((file) => !existsSync(path.join(REPO, file)));
  expect(missing).toEqual([]);
});

/**
 * Guarantee rows name tests as `file` › "name": each name must be a test of its file — literally,
 * or as a title jest builds from parameters (`$kind`, `%s`), or with `…` for words left out.
 */
test.each(DOCS)('every test name %s quotes is in the file it names', (doc) => {
  const wrong: string[] = [];
  for (const cited of read(doc).matchAll(/`(test\/[\w./-]+\.test\.ts)` › ((?:"[^"]+"(?:, )?)+)/g)) {
    const file = path.join(REPO, cited[1]);
    if (!existsSync(file)) continue; // reported by the test above
    const source = readFileSync(file, 'utf8');
    const titles = [...source.matchAll(/(['"`])((?:(?!\1)[^\\\n])+)\1/g)].map((m) => m[2]);
    for (const [, name] of cited[2].matchAll(/"([^"]+)"/g)) {
      const pieces = name.split('…').map((piece) => piece.trim());
      const found =
        pieces.every((piece) => source.includes(piece)) || titles.some((title) => titleMatches(title, name));
      if (!found) wrong.push(`${cited[1]} › "${name}"`);
    }
  }
  expect(wrong).toEqual([]);
});

/** Whether a title in the source (maybe with `$param`/`%s`) can produce the cited name (maybe with `…`). */
function titleMatches(title: string, name: string): boolean {
  const pattern = (text: string, wildcard: RegExp) =>
    text
      .split(wildcard)
      .map((piece) => piece.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
  const fromTitle = new RegExp(`^${pattern(title, /\$\w+|%[sdi#]/)}$`);
  const fromName = new RegExp(`^${pattern(name, /…/)}$`);
  return fromTitle.test(name) || fromName.test(title);
}

test.each(DOCS)('every relative link in %s resolves', (doc) => {
  const broken: string[] = [];
  for (const link of read(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = link[1];
    if (/^[a-z]+:/.test(target) || target.startsWith('#')) continue;
    const file = target.split('#')[0];
    if (!existsSync(path.join(REPO, path.dirname(doc), file))) broken.push(target);
  }
  expect(broken).toEqual([]);
});
