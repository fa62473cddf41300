/**
 * A local store is private: under the usual umask (022), every file a backup and a restore
 * create there — dump, `globals.sql` with its password hashes, manifest, lease, report — is 0600
 * and every folder 0700, the store's own folder included. A store whose root is shared with a
 * group on purpose (set-group-ID and group read: `chmod 2750`) gets files 0640 and folders 2750
 * instead: its group can read, never write; nobody else can do either.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { backupOf } from '../support/backed-up-database';
import { runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';

const pg = testEnv().server(15);
const database = uniqueName('modes');
const restored = uniqueName('modes_restored');
let umask: number;

/** Every file and folder under `root` (itself included), with its permission bits. */
function modes(root: string): { files: Map<string, number>; folders: Map<string, number> } {
  const files = new Map<string, number>();
  const folders = new Map<string, number>([['.', statSync(root).mode & 0o7777]]);
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const map = entry.isDirectory() ? folders : files;
    map.set(path.relative(root, full), statSync(full).mode & 0o7777);
  }
  return { files, folders };
}

async function backupAndRestore(store: string): Promise<BackupManifest> {
  const manifest = await backupOf(pg, database, store);
  await dropDatabase(pg, restored);
  const restore = await runCli([
    'restore',
    '--store',
    store,
    '--backup',
    manifest.id,
    '--target',
    sourceUrl(pg, restored),
  ]);
  if (restore.code !== 0) throw new Error(`restore failed: ${restore.stderr}`);
  return manifest;
}

beforeAll(async () => {
  // The CLI inherits this process's umask: the usual one, which leaves files world-readable.
  umask = process.umask(0o022);
  await createSeededDatabase(pg, database, 'CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g');
});
afterAll(async () => {
  process.umask(umask);
  await dropDatabase(pg, database);
  await dropDatabase(pg, restored);
});

test('under umask 022, every file in the store is 0600 and every folder 0700', async () => {
  const store = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-modes-')), 'store');
  const manifest = await backupAndRestore(store);
  const { files, folders } = modes(store);
  const names = [...files.keys()].map((f) => path.basename(f));
  expect(names).toEqual(
    expect.arrayContaining(['manifest.json', 'globals.sql', expect.stringMatching(/^restore-report-/)]),
  );
  expect(manifest.objects.map((o) => o.key)).toEqual(expect.arrayContaining(['globals.sql']));
  expect([...files].filter(([, mode]) => mode !== 0o600)).toEqual([]);
  expect([...folders].filter(([, mode]) => mode !== 0o700)).toEqual([]);
});

test('in a store whose root is shared with its group (chmod 2750), files are 0640 and folders 2750', async () => {
  const store = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-modes-shared-')), 'store');
  mkdirSync(store);
  chmodSync(store, 0o2750);
  await backupAndRestore(store);
  const { files, folders } = modes(store);
  expect(files.size).toBeGreaterThan(3);
  expect([...files].filter(([, mode]) => mode !== 0o640)).toEqual([]);
  expect([...folders].filter(([, mode]) => mode !== 0o2750)).toEqual([]);
});
