/**
 * The next run removes only the work folders whose run certainly died (core/work-folders.ts):
 * never a live run's, another host's, one without an owner file, or one whose pid now belongs to
 * another process that is still running. (A dead run's server is stopped: test/e2e/interrupts.test.ts.)
 * The folder they go in (`PGFERRY_WORK_DIR`) is refused in one line when it cannot hold them.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  createWorkFolder,
  describeAbandonedFolders,
  removeAbandonedWorkFolders,
  workRoot,
} from '../../../core/work-folders';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'pgferry-work-folders-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

function folderWithOwner(name: string, owner: Record<string, unknown> | undefined): string {
  const folder = path.join(root, name);
  mkdirSync(folder);
  if (owner) writeFileSync(path.join(folder, 'owner.json'), JSON.stringify(owner));
  return folder;
}

test('removes the folders of dead runs and of reused pids; leaves live, foreign and ownerless ones', async () => {
  const live = await createWorkFolder('restore', root);
  const liveOwner = JSON.parse(readFileSync(path.join(live, 'owner.json'), 'utf8'));
  const dead = deadPid();
  const base = { kind: 'verify', host: hostname(), bootId: liveOwner.bootId, startedAt: liveOwner.startedAt };
  folderWithOwner('pgferry-verify-dead', { ...base, pid: dead });
  // This very process's pid, but a process that started at another time: the owner is gone.
  folderWithOwner('pgferry-migrate-reused', {
    ...base,
    kind: 'migrate',
    pid: process.pid,
    processStart: liveOwner.processStart - 1,
  });
  folderWithOwner('pgferry-verify-elsewhere', { ...base, host: `not-${hostname()}`, pid: dead });
  folderWithOwner('pgferry-restore-ownerless', undefined);
  folderWithOwner('not-pgferry-dead', { ...base, pid: dead });

  const removed = await removeAbandonedWorkFolders(root);

  expect(removed.map((r) => path.basename(r.folder)).sort()).toEqual([
    'pgferry-migrate-reused',
    'pgferry-verify-dead',
  ]);
  expect(readdirSync(root).sort()).toEqual(
    [path.basename(live), 'not-pgferry-dead', 'pgferry-restore-ownerless', 'pgferry-verify-elsewhere'].sort(),
  );
  expect(describeAbandonedFolders(removed.filter((r) => r.kind === 'verify'))).toBe(
    `removed the work folder of runs that died: ${path.join(root, 'pgferry-verify-dead')} (a verify run, pid ${dead})`,
  );
});

test('a root that does not exist removes nothing and does not throw', async () => {
  expect(await removeAbandonedWorkFolders(path.join(root, 'missing'))).toEqual([]);
});

test('the work root is PGFERRY_WORK_DIR, else (unset or empty) the temporary folder', () => {
  expect(workRoot({ PGFERRY_WORK_DIR: root })).toBe(root);
  expect(workRoot({})).toBe(tmpdir());
  expect(workRoot({ PGFERRY_WORK_DIR: '' })).toBe(tmpdir());
});

test('a PGFERRY_WORK_DIR that is missing or not a folder is refused in one line saying what to do', () => {
  const missing = path.join(root, 'no-such-folder');
  expect(() => workRoot({ PGFERRY_WORK_DIR: missing })).toThrow(
    `PGFERRY_WORK_DIR is ${missing}, which does not exist: create it (or mount the disk it is on), or set PGFERRY_WORK_DIR to a folder this user can write to`,
  );
  const file = path.join(root, 'a-file');
  writeFileSync(file, '');
  expect(() => workRoot({ PGFERRY_WORK_DIR: file })).toThrow(
    `PGFERRY_WORK_DIR is ${file}, which is not a folder: set PGFERRY_WORK_DIR to a folder this user can write to`,
  );
  expect(() => workRoot({ PGFERRY_WORK_DIR: path.join(file, 'work') })).toThrow(/which does not exist: /);
});
