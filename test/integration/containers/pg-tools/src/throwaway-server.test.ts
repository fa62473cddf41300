/**
 * The restore drill's throwaway server (containers/pg-tools/src/throwaway-server.ts) started in a
 * work folder whose path is too long for a Unix socket in it (PostgreSQL's socket file path is at
 * most 107 bytes on Linux): it listens in a short folder of the system's temporary folder instead,
 * answers there, and both folders are gone once it is stopped. Before, pg_ctl failed with "could
 * not start server" (a verify of a backup in a deep PGFERRY_WORK_DIR).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { startThrowawayServer } from '../../../../../containers/pg-tools/src/throwaway-server';

const root = mkdtempSync(path.join(tmpdir(), 'pgferry-throwaway-'));

afterAll(() => rmSync(root, { recursive: true, force: true }));

test('a work folder too deep for a socket: the server listens in a short folder, and leaves nothing', async () => {
  const workDir = path.join(root, 'a-work-folder-whose-path-is-long'.repeat(3));
  mkdirSync(workDir, { recursive: true });
  // As the runner's work folder (verify.ts): the server's OS user (as root, postgres) reaches it.
  for (const dir of [root, path.dirname(workDir), workDir]) chmodSync(dir, 0o711);
  // With the folder the server makes in it: more than the socket's 107 bytes.
  expect(Buffer.byteLength(path.join(workDir, 'pgferry-server-XXXXXX', '.s.PGSQL.5432'))).toBeGreaterThan(
    107,
  );
  const server = await startThrowawayServer(15, 'the test', workDir, {
    PATH: process.env.PATH,
    PGFERRY_PG_BIN_DIRS: '/usr/lib/postgresql/15/bin',
  });
  let stopped = false;
  try {
    expect(server.socketDir.startsWith(workDir)).toBe(false);
    const client = new Client({
      host: server.socketDir,
      port: server.port,
      user: 'postgres',
      database: 'postgres',
    });
    await client.connect();
    const { rows } = await client.query<{ n: number }>('SELECT 1 AS n');
    await client.end();
    expect(rows[0].n).toBe(1);
    await server.stop();
    stopped = true;
    expect(existsSync(server.socketDir)).toBe(false);
    expect(readdirSync(workDir)).toEqual([]);
  } finally {
    if (!stopped) await server.stop();
  }
}, 180_000);
