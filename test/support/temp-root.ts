/**
 * One temporary folder per test run, under the system's, removed when the run ends. jest's global
 * setup (in the parent process, before any worker starts) points `TMPDIR` at it, so every test's
 * `mkdtemp(os.tmpdir())`, CDK's `cdk.out` of each synthesized stack, and the CLI and runner
 * processes the tests start (they pass `TMPDIR` on) write beneath it. Without it each run left its
 * folders behind: after a few dozen runs, 14 GB in /tmp (stacks' assemblies, the restart tests'
 * data directories, stores). A run that was killed leaves its folder; the next run removes it (its
 * `owner.pid` no longer alive). The test servers' folder (global-setup.ts) stays in the system's
 * temporary folder, with its own cleanup: its servers are stopped before anything is removed.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const PREFIX = 'pgferry-jest-';
/** The run's folder, once made (jest runs each project's global setup in the one parent process). */
const ROOT_VAR = 'PGFERRY_TEST_TMP_ROOT';
/** The system's temporary folder, as it was before the run's. */
const PARENT_VAR = 'PGFERRY_TEST_TMP_PARENT';

/** The system's temporary folder: where the run's folder and the test servers' are made. */
export function systemTmpdir(): string {
  return process.env[PARENT_VAR] ?? os.tmpdir();
}

/** Makes the run's folder (once per run) and points `TMPDIR` at it. */
export function useTempRoot(): void {
  if (process.env[ROOT_VAR]) return;
  const parent = os.tmpdir();
  removeStaleRoots(parent);
  const root = mkdtempSync(path.join(parent, PREFIX));
  // As /tmp: the throwaway servers' OS user (postgres) makes its folders beneath it too.
  chmodSync(root, 0o1777);
  writeFileSync(path.join(root, 'owner.pid'), `${process.pid}\n`);
  process.env[PARENT_VAR] = parent;
  process.env[ROOT_VAR] = root;
  process.env.TMPDIR = root;
}

/** Removes the run's folder and gives `TMPDIR` back. */
export function removeTempRoot(): void {
  const root = process.env[ROOT_VAR];
  if (!root) return;
  rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  process.env.TMPDIR = process.env[PARENT_VAR];
  delete process.env[ROOT_VAR];
  delete process.env[PARENT_VAR];
}

function removeStaleRoots(parent: string): void {
  for (const entry of readdirSync(parent)) {
    if (!entry.startsWith(PREFIX)) continue;
    const dir = path.join(parent, entry);
    try {
      const owner = Number(readFileSync(path.join(dir, 'owner.pid'), 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      }
    } catch {
      // not a run's folder, or being removed
    }
  }
}

/** Whether a process of that pid runs (another user's too). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** jest globalSetup of the projects without servers (unit, template). */
export default function globalSetup(): void {
  useTempRoot();
}
