/**
 * `npm run demo`, the README's first command, run as a user runs it — and run again, as a user
 * does: each run starts its own throwaway server, backs up its `shop` database into ./demo-store
 * (emptied first, since a store refuses one catalog name for two servers), lists it, and removes
 * the server.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO } from '../support/cli';

const DEMO = path.join(REPO, 'dist', 'scripts', 'demo.js');

/** Runs the demo in `cwd`, as `npm run demo` would from there; resolves with its exit and output. */
function runDemo(cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO], { cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The throwaway server's folder, as the demo prints it when it starts the server. */
function serverFolder(stdout: string): string {
  const match = /Starting a throwaway PostgreSQL server on 127\.0\.0\.1:\d+ \((.+)\)\n/.exec(stdout);
  if (!match) throw new Error(`the demo did not say where its server is:\n${stdout}`);
  return match[1];
}

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const cleanup of cleanups) cleanup();
});

test('the demo backs up, lists and cleans up, and runs again in the same folder', async () => {
  const cwd = mkdtempSync(path.join(tmpdir(), 'pgferry-demo-test-'));
  const store = path.join(cwd, 'demo-store');
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));

  const first = await runDemo(cwd);
  expect([first.code, first.stderr]).toEqual([0, expect.not.stringContaining('demo:')]);
  expect(first.stdout).toMatch(/^Backup \S+ took \d+\.\d s/m);
  expect(first.stdout).toContain('$ pgferry list --store');
  expect(first.stdout).not.toContain('Emptied ./demo-store');
  const firstBackups = readdirSync(path.join(store, 'shop'));
  expect(existsSync(serverFolder(first.stdout))).toBe(false);

  const second = await runDemo(cwd);
  expect([second.code, second.stderr]).toEqual([0, expect.not.stringContaining('demo:')]);
  expect(second.stdout).toContain("Emptied ./demo-store (the previous demo run's backups)");
  expect(existsSync(serverFolder(second.stdout))).toBe(false);
  // The store holds the second run's backup alone.
  const secondBackups = readdirSync(path.join(store, 'shop')).filter(
    (entry) => !firstBackups.includes(entry),
  );
  expect(readdirSync(path.join(store, 'shop')).filter((entry) => firstBackups.includes(entry))).toEqual([]);
  expect(secondBackups.length).toBeGreaterThan(0);
}, 240_000);
