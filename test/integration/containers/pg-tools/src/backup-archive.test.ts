/**
 * `guardedSnapshot` (containers/pg-tools/src/backup-archive.ts) on a real server: a caller that
 * gives up before the snapshot's catalog read has ended (pg_dump failed at once, say, on a scope
 * pattern that matches nothing) ends the session under the read. The read then fails with nobody
 * awaiting it: that must not be an unhandled rejection, which ends the runner with a stack trace
 * instead of the dump's own one-line error.
 */
import { Client } from 'pg';
import { guardedSnapshot } from '../../../../../containers/pg-tools/src/backup-archive';
import { testEnv } from '../../../../support/env';

const pg = testEnv().server(15);

async function connected(): Promise<Client> {
  const client = new Client(pg.clientConfig('postgres'));
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
