/**
 * The docs say what is true of the tree: every test a guarantee names exists (with the named
 * test in it), every relative link resolves, and the tests mirror the source as
 * docs/development.md says. (That docs/commands.md is the CLI's own
 * definitions is checked on the built code: test/integration/cli/command-reference.test.ts.)
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
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

/**
 * Tests whose subject is a property of several modules, not one: the named folder holds what they
 * exercise. Every other test of test/unit and test/integration mirrors its source.
 */
const TOPIC_TESTS: Record<string, string> = {
  'test/unit/docs/docs-current.test.ts': 'the docs (docs/, README.md) against the tree',
  'test/unit/core/hostile-input.test.ts': 'random input against the contracts and the store keys',
  'test/unit/lib/runtime-bindings.test.ts': 'the bindings each function and task gets, across the stack',
  'test/unit/lib/pg-tools-image.test.ts': "the task's container image: Dockerfile and asset",
  'test/unit/lib/rds-iam-auth.test.ts': 'IAM database authentication, across the stack',
  'test/unit/lib/least-privilege.test.ts': 'the grants of every role in the stack',
  'test/unit/lib/database-retention.test.ts': "a database's own retention policy, across the stack",
  'test/unit/lib/stack-headroom.test.ts':
    "the main stack's resources and size against CloudFormation's limits",
  'test/unit/scripts/install.test.ts': "the install's check (check-install.ts) and bin link (link-bin.ts)",
  'test/integration/core/server-errors.test.ts': "servers' errors worded into one line, across modules",
  'test/integration/core/postgres/split-load.test.ts':
    "restore's parallel COPY of its largest tables (core/postgres/tools.ts' split), beside the attach passes",
  'test/integration/core/postgres/sections.test.ts':
    "a multi-archive backup's restore (core/postgres/tools.ts' pgRestoreSections): post-data beside the data",
  'test/integration/core/store-loading.test.ts': 'what opening each kind of store loads (core/store/)',
  'test/integration/containers/pg-tools/src/restore-analyze.test.ts':
    "a streamed restore's ANALYZE beside the load (core/postgres/admin.ts' AnalyzeAsLoaded, restore-stream.ts)",
};

/**
 * docs/development.md says test/unit/ and test/integration/ mirror the source tree: each
 * `test/<kind>/<path>.test.ts` tests `<path>.ts`, or the folder `<path>/` (beside it, or as
 * `<path>/<name>.test.ts` inside the folder `<name>`), unless it is one of the TOPIC_TESTS.
 */
test('test/unit and test/integration mirror the source tree', () => {
  const unmirrored: string[] = [];
  for (const kind of ['unit', 'integration']) {
    const root = path.join(REPO, 'test', kind);
    for (const entry of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
      if (!entry.endsWith('.test.ts')) continue;
      const test = `test/${kind}/${entry}`;
      const source = entry.slice(0, -'.test.ts'.length);
      const mirrored =
        existsSync(path.join(REPO, `${source}.ts`)) ||
        isFolder(path.join(REPO, source)) ||
        path.basename(path.dirname(source)) === path.basename(source);
      if (!mirrored && !(test in TOPIC_TESTS)) unmirrored.push(test);
    }
  }
  expect(unmirrored).toEqual([]);
  // An entry for a test that is gone, or mirrors after all, is stale.
  expect(Object.keys(TOPIC_TESTS).filter((test) => !existsSync(path.join(REPO, test)))).toEqual([]);
});

function isFolder(file: string): boolean {
  return statSync(file, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
