/**
 * A real `pgferry serve` (bin/pgferry.js, built code) for the tests: started on a free port with
 * the server's password only in its environment, and what it printed — its URL, its token file's
 * token and the console's one-time sign-in link.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { cliEnv, extraPgBinDirs, REPO } from './cli';

export interface Served {
  child: ChildProcess;
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  token: string;
  /** The console's one-time sign-in link. */
  signInLink: string;
  stderr: () => string;
  stop: () => Promise<void>;
}

/** Starts `pgferry serve --store <storeDir>` (and `args`) and waits until it listens. */
export async function startServe(
  storeDir: string,
  stateDir: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<Served> {
  const child = spawn(
    process.execPath,
    [
      path.join(REPO, 'bin', 'pgferry.js'),
      'serve',
      '--store',
      storeDir,
      '--port',
      '0',
      '--state-dir',
      stateDir,
      ...args,
    ],
    {
      cwd: REPO,
      env: cliEnv({
        PGFERRY_PG_BIN_DIRS: [...extraPgBinDirs(), '/usr/lib/postgresql/15/bin'].join(':'),
        ...env,
      }),
    },
  );
  let stderr = '';
  const [url, signInLink] = await new Promise<[string, string]>((resolve, reject) => {
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      const listening = /listening on (http:\/\/\S+)/.exec(stderr);
      const link = /the console: (http:\/\/\S+)/.exec(stderr);
      if (listening && link) resolve([listening[1], link[1]]);
    });
    child.on('exit', (code) => reject(new Error(`pgferry serve exited (${code}): ${stderr}`)));
  });
  const tokenFile = /API token is in (\S+)/.exec(stderr)?.[1];
  if (!tokenFile) throw new Error(`no token file in: ${stderr}`);
  return {
    child,
    url,
    signInLink,
    token: readFileSync(tokenFile, 'utf8').trim(),
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
