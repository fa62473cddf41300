/**
 * A PostgreSQL server of one suite's own, for migrations into it: a migration creates the source
 * server's roles on its target, which on a shared server would hand other suites' roles to each
 * other (restore.test.ts proves that a restore refuses roles the target lacks).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makePostgres, type TestPostgres } from './env';
import { type PostgresServerInfo, type StartPostgresOptions, startPostgres, stopPostgres } from './postgres';

/**
 * Starts a server of `major` before the tests of the enclosing scope and stops it after, with
 * everything on it — afterAll hooks of one scope run in order, so the scope's own afterAll must
 * not use the server.
 */
export function usePrivateServer(
  major: number,
  options: Pick<StartPostgresOptions, 'locale' | 'env' | 'settings'> = {},
): () => TestPostgres {
  const dir = mkdtempSync(path.join(tmpdir(), `pgferry-private-pg${major}-`));
  let server: PostgresServerInfo | undefined;
  beforeAll(async () => {
    // The server runs as the postgres OS user, which must reach its directory.
    chmodSync(dir, 0o755);
    server = await startPostgres(major, { parentDir: dir, password: `private pw ${major}`, ...options });
  }, 120_000);
  afterAll(async () => {
    if (server) await stopPostgres(server);
    rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!server) throw new Error(`the private PostgreSQL ${major} server did not start`);
    return makePostgres(server);
  };
}
