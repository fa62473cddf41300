/**
 * The install as a tool's users meet it. The fresh-clone check itself (install log, `git status`,
 * the first `npx pgferry` with an empty npm cache) runs in .ci/run on CI's own clone, right after
 * its `npm install`; here: the rules it applies, and what makes `npx pgferry` start at once.
 */
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../../../lib/paths';
import { satisfiesMinimum, undeclaredInstallWarnings } from '../../../scripts/check-install';
import { linkOwnBin } from '../../../scripts/link-bin';

const engineBlock = (pkg: string, node: string) =>
  [
    'npm warn EBADENGINE Unsupported engine {',
    `npm warn EBADENGINE   package: '${pkg}',`,
    `npm warn EBADENGINE   required: { node: '${node}' },`,
    "npm warn EBADENGINE   current: { node: 'v20.20.2', npm: '11.19.1' }",
    'npm warn EBADENGINE }',
  ].join('\n');

const prepareOutput = [
  '',
  '> pgferry@0.1.0 prepare',
  '> npm run build && node dist/scripts/link-bin.js',
  '',
  'added 497 packages in 1m',
].join('\n');

describe('install log', () => {
  test('engine warnings that the Node the install brings satisfies are all it may print', () => {
    const log = [
      engineBlock('aws-local-stepfunctions@3.0.0', '>=22.0.0'),
      engineBlock('commander@15.1.0', '>=22.12.0'),
      prepareOutput,
    ].join('\n');
    expect(undeclaredInstallWarnings(log, 'v22.23.3')).toEqual([]);
  });

  test("the install before this project declared its install scripts (main's log, trimmed) fails", () => {
    const log = [
      engineBlock('pgferry@0.1.0', '>=22'),
      prepareOutput,
      'npm warn install-scripts 5 packages have install scripts not yet covered by allowScripts:',
      'npm warn install-scripts   node@22.23.3 (preinstall: node installArchSpecificPackage)',
    ].join('\n');
    expect(undeclaredInstallWarnings(log, 'v22.23.3')).toEqual([
      'npm warn install-scripts 5 packages have install scripts not yet covered by allowScripts:',
      'npm warn install-scripts   node@22.23.3 (preinstall: node installArchSpecificPackage)',
    ]);
  });

  test.each([
    ['a Node newer than the one the install brings', '>=24', 'needs Node >=24'],
    ['a range it cannot judge', '^20 || ^22', 'needs Node ^20 || ^22'],
  ])('an engine warning for %s is reported', (_, range, message) => {
    const problems = undeclaredInstallWarnings(engineBlock('future@1.0.0', range), 'v22.23.3');
    expect(problems).toEqual([`engine warning: future@1.0.0 ${message}, not met by Node v22.23.3`]);
  });

  test('deprecations, errors and any other warning are reported', () => {
    const log = [
      'npm warn deprecated glob@7.2.3: Glob versions prior to v9 are no longer supported',
      'npm error code ELIFECYCLE',
      'npm warn EBADDEVENGINES The developer of this package has specified the following through devEngines',
    ].join('\n');
    expect(undeclaredInstallWarnings(log, 'v22.23.3')).toHaveLength(3);
  });

  test.each([
    ['>=22', 'v22.0.0', true],
    ['>=22.12.0', 'v22.23.3', true],
    ['>=22.12.0', '22.11.9', false],
    ['>=20.17', 'v20.20.2', true],
    ['>=23', 'v22.23.3', false],
    ['^22', 'v22.23.3', false],
  ])('%s with %s: %s', (range, version, ok) => {
    expect(satisfiesMinimum(range, version)).toBe(ok);
  });
});

describe('npx pgferry', () => {
  test('package.json declares no bin: npx would install the whole folder into its cache first', () => {
    // libnpmexec runs `npx <cmd>` by installing the folder when its package.json has bin[<cmd>],
    // before it looks at node_modules/.bin; prepare links the bin there instead (link-bin.ts).
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(pkg.bin).toBeUndefined();
    expect(pkg.scripts.prepare).toMatch(/node dist\/scripts\/link-bin\.js$/);
  });

  test("prepare links node_modules/.bin/pgferry to the project's bin, relatively, replacing what was there", () => {
    const root = mkdtempSync(path.join(tmpdir(), 'pgferry-link-'));
    try {
      mkdirSync(path.join(root, 'bin'));
      writeFileSync(path.join(root, 'bin', 'pgferry.js'), '');
      mkdirSync(path.join(root, 'node_modules', '.bin'), { recursive: true });
      writeFileSync(path.join(root, 'node_modules', '.bin', 'pgferry'), 'stale');
      const link = linkOwnBin(root);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(path.join('..', '..', 'bin', 'pgferry.js'));
      expect(realpathSync(link)).toBe(realpathSync(path.join(root, 'bin', 'pgferry.js')));
      linkOwnBin(root); // a second install
      expect(readlinkSync(link)).toBe(path.join('..', '..', 'bin', 'pgferry.js'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
