/**
 * `guardedSnapshot` (containers/pg-tools/src/backup-archive.ts) on a real server.
 *
 * A caller that gives up before the snapshot's catalog read has ended (pg_dump failed at once, say,
 * on a scope pattern that matches nothing) ends the session under the read. The read then fails
 * with nobody awaiting it: that must not be an unhandled rejection, which ends the runner with a
 * stack trace instead of the dump's own one-line error.
 *
 * A parallel backup's side dump takes its own second look (`SnapshotGuard.sideDump`): the main
 * pg_dump may have ended, its locks gone, before the side pg_dump locks its tables.
 */
import { Client } from 'pg';
import { guardedSnapshot, TablesChangedError } from '../../../../../containers/pg-tools/src/backup-archive';
import type { TableDataRows } from '../../../../../core/postgres/archive';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../../../../support/env';

const pg = testEnv().server(15);

async function connected(database = 'postgres'): Promise<Client> {
  const client = new Client(pg.clientConfig(database));
  await client.connect();
  return client;
}

test('a catalog read that fails after its caller gave up is no unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const session = await connected();
  const observer = await connected();
  try {
    await guardedSnapshot(session, observer, 5_000, async (c) => {
      await c.query('SELECT pg_sleep(0.5)');
      return { more: true };
    });
    // The caller fails before the read is in and ends the session, as dump.ts's `finally` does.
    await session.end();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await observer.end();
  }
});

describe("a side dump's look", () => {
  const database = uniqueName('side_look');
  beforeAll(() =>
    createSeededDatabase(pg, database, 'CREATE TABLE moved AS SELECT g AS id FROM generate_series(1, 10) g'),
  );
  afterAll(() => dropDatabase(pg, database));

  test('counts its first bytes toward the exporting transaction, and stops its stream at its TOC on a table rewritten after the main look', async () => {
    const session = await connected(database);
    const observer = await connected(database);
    const other = await connected(database);
    try {
      const pid = (await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const state = async () =>
        (await other.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid]))
          .rows[0].state;
      const oid = Number(
        (await other.query<{ oid: string }>("SELECT 'moved'::regclass::oid AS oid")).rows[0].oid,
      );
      const moved: TableDataRows[] = [{ dumpId: 1, oid, schema: 'public', name: 'moved', rows: 10 }];
      const { guard, read } = await guardedSnapshot(session, observer, 5_000, async () => ({}), undefined, 2);
      await read;
      const side = guard.sideDump();

      // The main pg_dump's first bytes: the exporting transaction waits for the side pg_dump's too.
      guard.firstBytes();
      await guard.verify(moved);
      expect(await state()).toBe('idle in transaction');

      // The main pg_dump has ended; the table is rewritten before the side pg_dump locks it.
      await other.query('ALTER TABLE moved ALTER COLUMN id TYPE bigint');
      side.firstBytes();
      side.tocRead([oid]);
      await new Promise((resolve) =>
        side.signal.aborted ? resolve(undefined) : side.signal.addEventListener('abort', resolve),
      );
      expect(side.signal.reason).toBeInstanceOf(TablesChangedError);
      expect((side.signal.reason as Error).message).toMatch(
        /^public\.moved was rewritten after the dump's snapshot/,
      );
      await expect(side.verify(moved)).rejects.toThrow(side.signal.reason as Error);
      expect(guard.signal.aborted).toBe(false);
      for (let tries = 0; (await state()) !== 'idle'; tries++) {
        if (tries > 100) throw new Error(`the exporting transaction is still open: ${await state()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // A side dump that wrote nothing took no look.
      await expect(guard.sideDump().verify(moved)).rejects.toThrow('pg_dump wrote nothing');
    } finally {
      await Promise.all([session.end(), observer.end(), other.end()]);
    }
  });
});
