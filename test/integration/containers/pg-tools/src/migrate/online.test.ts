/**
 * An online migration's own clean-up after a failure or Ctrl-C (containers/pg-tools/src/migrate/
 * online.ts `undoReplication`, what the runner adds to its failure's message) on a real source: a
 * slot another consumer streams from, whose session the source login may not end (a superuser's
 * pg_recvlogical, to a login shaped like RDS's), is not waited on — the message names the slot, its
 * consumer and the commands that remove it. The same drop as MigrateCleanup's
 * (test/integration/lambdas/migrate/steps/finish.test.ts).
 */

import type { Context } from '../../../../../../containers/pg-tools/src/migrate/context';
import { undoReplication } from '../../../../../../containers/pg-tools/src/migrate/online';
import type { MigrateDatabasePlan } from '../../../../../../core/contracts';
import { replicationName } from '../../../../../../core/postgres/logical-replication';
import { newBackupId } from '../../../../../../core/store-keys';
import {
  createDatabase,
  createLogin,
  dropDatabase,
  dropLogin,
  giveDatabase,
  uniqueName,
} from '../../../../../support/env';
import {
  dropLeftSlot,
  leftReplication,
  slotConsumerPid,
  superuserSlotConsumer,
} from '../../../../../support/faults';
import { usePrivateServer } from '../../../../../support/private-server';

const source = usePrivateServer(15, { settings: { wal_level: 'logical' } });

test("a slot streamed to a superuser's pg_recvlogical: the runner's message names it, its consumer and what to do, at once", async () => {
  const server = source();
  const login = await createLogin(server, 'online_undo', 'REPLICATION');
  const database = uniqueName('online_undo_src');
  await createDatabase(server, database);
  await giveDatabase(server, database, login.user);
  const name = replicationName(newBackupId());
  await leftReplication(server, database, name, login);
  const consumer = await superuserSlotConsumer(server, database, name);
  try {
    const connection = { ...server.connection(database), user: login.user };
    const started = Date.now();
    const said = await undoReplication(
      { sourcePassword: login.password, targetPassword: login.password } as Context,
      { source: connection, target: connection, readOnlySetting: null } as unknown as MigrateDatabasePlan,
      { name, identityFull: [], publication: true, slot: true, frozen: false },
      false,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(said).toBe(
      ' (NOT UNDONE: cleaning up the source: ' +
        `the slot is in use by pid ${consumer.pid} (user postgres, application "pg_recvlogical", state hidden from this role), ` +
        'a session this login could not end (must be a superuser to terminate superuser process): ' +
        `end that session first (a superuser, or its own role, may: SELECT pg_terminate_backend(${consumer.pid});); ` +
        `drop the slot with SELECT pg_drop_replication_slot('${name}'))`,
    );
    expect(await slotConsumerPid(server, name)).toBe(consumer.pid);
    expect(consumer.stderr()).toBe('');
  } finally {
    await consumer.stop();
    await dropLeftSlot(server, name);
    await dropDatabase(server, database);
    await dropLogin(server, login.user);
  }
}, 60_000);
