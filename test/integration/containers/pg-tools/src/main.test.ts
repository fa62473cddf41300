/**
 * The runner started ahead of its task (TASK_ENV.envOnStdin, as the local executor starts it): it
 * runs with the environment it is given on stdin, that one alone; with none given before its
 * stdin ends, it exits having done nothing.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { jobKey, newBackupId } from '../../../../../core/store-keys';
import { TASK_ENV } from '../../../../../core/workflows';
import { cliEnv, REPO } from '../../../../support/cli';

const ENTRYPOINT = path.join(REPO, 'dist', 'containers', 'pg-tools', 'src', 'main.js');

/** Starts the runner ahead with `env`; writes `line` (if any) on its stdin, then ends it. */
function runAhead(env: Record<string, string>, line?: string) {
  const child = spawn(process.execPath, [ENTRYPOINT], {
    env: cliEnv({ ...env, [TASK_ENV.envOnStdin]: '1' }),
  });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  if (line !== undefined) child.stdin.write(`${line}\n`);
  child.stdin.end();
  return new Promise<{ code: number | null; lines: { message?: string; errorMessage?: string }[] }>(
    (resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) =>
        resolve({
          code,
          lines: output
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l)),
        }),
      );
    },
  );
}

test('started ahead, the runner runs with the environment given on stdin, and that one only', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-runner-ahead-'));
  const key = jobKey('restore', 'shop', newBackupId(), newBackupId());
  const given = {
    ...cliEnv(),
    [TASK_ENV.action]: 'restore',
    [TASK_ENV.jobStore]: `file://${dir}`,
    [TASK_ENV.jobKey]: key,
  };
  // Started with a stall timeout the runner refuses, which the environment given does not have.
  const run = await runAhead({ [TASK_ENV.stallTimeout]: 'soon' }, JSON.stringify(given));
  expect(run.code).toBe(1);
  expect(run.lines).toEqual([
    expect.objectContaining({
      message: 'failed',
      errorMessage: `no restore job at ${key} in file://${dir}: the workflow's preflight stores it; start the restore again`,
    }),
  ]);
});

test('started ahead and given no task, the runner exits at once, having done nothing', async () => {
  const run = await runAhead({});
  expect(run).toEqual({ code: 0, lines: [] });
});
