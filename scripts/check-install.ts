/**
 * CI's check of a fresh clone's install (run by .ci/run right after `npm install`, before the
 * tests write anything):
 *
 *   node dist/scripts/check-install.js <install-log>
 *
 * where <install-log> is the output of `npm install --loglevel=warn` (warn level: the project's
 * .npmrc prints errors only, and this check must see everything it hides). Fails, one line per
 * problem, when
 * - the install printed an error, or a warning other than an engine warning that the Node the
 *   install brings (the `node` package) satisfies — the one kind .npmrc hides on purpose;
 * - `git status` is not clean (a rewritten lock file, a build output that is not ignored);
 * - `node_modules/.bin/pgferry` is not the project's own bin/pgferry.js;
 * - `npx pgferry --version`, with an empty npm cache, does not print the version, prints anything
 *   else, or installs anything into npx's cache (what made its first run take minutes).
 * - the first `npx pgferry --version` with an empty npm cache takes a second or more (the median of
 *   four such first runs, each with a cache of its own; every time is printed).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../lib/paths';
import { median } from './support/measure';

/** How many first runs of `npx pgferry --version` are timed, and what their median must stay under. */
const NPX_RUNS = 4;
const NPX_SECONDS = 1;

/** One `npm warn EBADENGINE` block: which package asked for which Node. */
interface EngineWarning {
  pkg: string;
  requiredNode: string | undefined;
}

/**
 * The problems in an npm install log: every `npm error` line and every `npm warn` line, except
 * engine warnings whose required Node range `nodeVersion` (the Node the install brings) satisfies.
 */
export function undeclaredInstallWarnings(log: string, nodeVersion: string): string[] {
  const problems: string[] = [];
  let block: EngineWarning | undefined;
  for (const line of log.split('\n')) {
    const m = /^npm (warn|error|WARN|ERR!) ?(\S*)\s*(.*)$/.exec(line.trimEnd());
    if (!m) continue;
    const [, , code, text] = m;
    if (code === 'EBADENGINE') {
      if (text === 'Unsupported engine {') block = { pkg: '?', requiredNode: undefined };
      else if (block && text === '}') {
        if (!block.requiredNode || !satisfiesMinimum(block.requiredNode, nodeVersion))
          problems.push(
            `engine warning: ${block.pkg} needs Node ${block.requiredNode ?? '?'}, not met by Node ${nodeVersion}`,
          );
        block = undefined;
      } else if (block) {
        const pkg = /^package: '([^']+)'/.exec(text);
        if (pkg) block.pkg = pkg[1];
        const required = /^required: \{.*\bnode: '([^']+)'/.exec(text);
        if (required) block.requiredNode = required[1];
      }
      continue;
    }
    problems.push(line.trim());
  }
  if (block) problems.push(`engine warning for ${block.pkg}, not closed in the log`);
  return problems;
}

/**
 * Whether `version` (`v22.23.3` or `22.23.3`) meets a plain minimum range (`>=22`, `>=22.12.0`).
 * Any other range form is not judged: false, so the warning is reported.
 */
export function satisfiesMinimum(range: string, version: string): boolean {
  const min = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim());
  const have = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(version.trim());
  if (!min || !have) return false;
  for (let i = 1; i <= 3; i++) {
    const want = Number(min[i] ?? 0);
    const got = Number(have[i]);
    if (got !== want) return got > want;
  }
  return true;
}

function main(logPath: string | undefined): void {
  if (!logPath) {
    process.stderr.write('usage: node dist/scripts/check-install.js <npm-install-log>\n');
    process.exit(2);
  }
  const problems: string[] = [];
  const node22 = path.join(REPO_ROOT, 'node_modules', '.bin', 'node');
  const nodeVersion = execFileSync(node22, ['--version'], { encoding: 'utf8' }).trim();
  problems.push(...undeclaredInstallWarnings(readFileSync(logPath, 'utf8'), nodeVersion));

  const status = execFileSync('git', ['status', '--porcelain'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (status.trim()) problems.push(`git status is not clean after the install:\n${status.trimEnd()}`);

  const link = path.join(REPO_ROOT, 'node_modules', '.bin', 'pgferry');
  const own = realpathSync(path.join(REPO_ROOT, 'bin', 'pgferry.js'));
  if (!existsSync(link) || realpathSync(link) !== own) problems.push(`${link} is not a link to ${own}`);

  // The first `npx pgferry` a user runs, with nothing in npm's cache: four times, each with a
  // cache of its own. The very first also pays for the machine reading npm's own exec modules
  // (libnpmexec, arborist, pacote, sigstore: ~800 files the install itself did not load) from
  // disk for the first time; the median is what a first use costs once the machine has run npm.
  const version = (
    JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const seconds: number[] = [];
  for (let run = 0; run < NPX_RUNS; run++) {
    const cache = mkdtempSync(path.join(tmpdir(), 'pgferry-npm-cache-'));
    try {
      const started = process.hrtime.bigint();
      const npx = spawnSync('npx', ['pgferry', '--version'], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        env: { ...process.env, npm_config_cache: cache },
        timeout: 600_000,
      });
      seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
      if (npx.status !== 0 || npx.stdout.trim() !== version || npx.stderr.trim()) {
        problems.push(
          `npx pgferry --version: exit ${npx.status}, stdout ${JSON.stringify(npx.stdout.trim())} ` +
            `(want ${version}), stderr ${JSON.stringify(npx.stderr.trim())}`,
        );
        break;
      }
      // npm writes its debug logs to <cache>/_logs; packages it fetched or installed go elsewhere.
      const fetched = ['_npx', '_cacache'].find((entry) => existsSync(path.join(cache, entry)));
      if (fetched) {
        problems.push(`npx pgferry installed or fetched packages (it created ${fetched} in the npm cache)`);
        break;
      }
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  }
  const middle = median(seconds);
  process.stdout.write(
    `first \`npx pgferry --version\` with an empty npm cache: ${seconds.map((s) => s.toFixed(2)).join(', ')} s ` +
      `(median ${middle.toFixed(2)} s)\n`,
  );
  if (seconds.length === NPX_RUNS && middle >= NPX_SECONDS)
    problems.push(
      `the first npx pgferry --version took ${middle.toFixed(2)} s (median), not under ${NPX_SECONDS} s`,
    );

  if (problems.length) {
    for (const p of problems) process.stderr.write(`check-install: ${p}\n`);
    process.exit(1);
  }
  process.stdout.write(
    'check-install: install printed nothing to interpret, git status clean, npx ran the linked bin\n',
  );
}

if (require.main === module) main(process.argv[2]);
