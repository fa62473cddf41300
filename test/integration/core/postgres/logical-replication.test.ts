/**
 * The online cutover's sentinel (core/postgres/logical-replication.ts) on a real server: created in
 * a schema of its own and added to the publication, written and read by token, dropped — and never
 * a schema that was there before it: creating over one fails and leaves it, dropping leaves a schema
 * that holds anything else. (That its row proves the target applied everything before it is
 * test/e2e/migrate-online-paths.test.ts's.) And the publication's record of the tables an online
 * migration set to REPLICA IDENTITY FULL, which whoever drops it resets; copies of it (a copy made in
 * the migration's snapshot) dropped by that note, a user's publication kept. And the cutover's
 * sequences: set to the source's states (called or not, descending, names that need quoting),
 * many to a statement.
 */

import { SEQUENCES_PER_QUERY, sequenceStates } from '../../../../core/postgres/inspect';
import {
  createPublication,
  createSentinel,
  dropOwnPublications,
  dropPublicationAndSlot,
  dropSentinel,
  replicationName,
  sentinelArrived,
  sentinelTable,
  setSequences,
  writeSentinel,
} from '../../../../core/postgres/logical-replication';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';
import { countingStatements } from '../../../support/statement-count';

const pg = testEnv().server(15);
const database = uniqueName('sentinel');
const name = replicationName('20261202T120000Z-a1b2c3');

beforeAll(() => createDatabase(pg, database));
afterAll(() => dropDatabase(pg, database));

const schemas = () =>
  withClient(pg, database, (c) =>
    c.query<{ n: string }>(`SELECT nspname AS n FROM pg_namespace WHERE nspname LIKE 'pgferry%' ORDER BY 1`),
  ).then((r) => r.rows.map((row) => row.n));

test('is named after the migration, quoted', () => {
  expect(name).toBe('pgferry_20261202t120000z_a1b2c3');
  expect(sentinelTable(name)).toBe('"pgferry_20261202t120000z_a1b2c3".sentinel');
});

test('created in a schema of its own and published; a row is found by its token; dropped with its schema', async () => {
  await withClient(pg, database, async (c) => {
    await c.query(`CREATE PUBLICATION ${name}`);
    try {
      await createSentinel(c, name, true);
      const { rows } = await c.query<{ t: string }>(
        `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1`,
        [name],
      );
      expect(rows.map((r) => r.t)).toEqual([`${name}.sentinel`]);
      expect(await sentinelArrived(c, name, 'one')).toBe(false);
      await writeSentinel(c, name, 'one');
      expect(await sentinelArrived(c, name, 'one')).toBe(true);
      expect(await sentinelArrived(c, name, 'two')).toBe(false);
      await dropSentinel(c, name);
      const published = await c.query('SELECT 1 FROM pg_publication_rel');
      expect(published.rows).toEqual([]);
    } finally {
      await c.query(`DROP PUBLICATION ${name}`);
    }
  });
  expect(await schemas()).toEqual([]);
  // Nothing to drop is no error.
  await withClient(pg, database, (c) => dropSentinel(c, name));
});

test('a schema of that name already there: creating fails and leaves it; dropping leaves what is not the sentinel', async () => {
  await withClient(pg, database, async (c) => {
    await c.query(
      `CREATE SCHEMA ${name}; CREATE TABLE ${name}.kept (id int); CREATE TABLE ${name}.sentinel (id int)`,
    );
    await expect(createSentinel(c, name, false)).rejects.toThrow(/already exists/);
    const tables = await c.query<{ t: string }>(
      'SELECT relname AS t FROM pg_class WHERE relnamespace = $1::regnamespace ORDER BY 1',
      [name],
    );
    expect(tables.rows.map((r) => r.t)).toEqual(['kept', 'sentinel']);
    await dropSentinel(c, name);
    expect(await schemas()).toEqual([name]);
    await c.query(`DROP SCHEMA ${name} CASCADE`);
  });
});

test('--replica-identity-full: the publication records the keyless tables it set to FULL, and dropping it (from any session) gives each its own identity back', async () => {
  const relreplident = () =>
    withClient(pg, database, (c) =>
      c.query<{ t: string; r: string }>(
        `SELECT relname AS t, relreplident AS r FROM pg_class WHERE relname LIKE 'ri\\_%' AND relkind = 'r' ORDER BY 1`,
      ),
    ).then((r) => Object.fromEntries(r.rows.map((row) => [row.t, row.r])));
  await withClient(pg, database, (c) =>
    c.query(`CREATE TABLE ri_keyed (id int PRIMARY KEY);
             CREATE TABLE ri_keyless (v text);
             CREATE TABLE ri_nothing (v text); ALTER TABLE ri_nothing REPLICA IDENTITY NOTHING;
             CREATE TABLE "ri_Odd name" (v text);`),
  );
  const before = await relreplident();
  expect(before).toEqual({ 'ri_Odd name': 'd', ri_keyed: 'd', ri_keyless: 'd', ri_nothing: 'n' });
  const set = await withClient(pg, database, (c) =>
    createPublication(c, name, { replicaIdentityFull: true }),
  );
  expect(set).toEqual(['"public"."ri_Odd name"', '"public"."ri_keyless"', '"public"."ri_nothing"']);
  expect(await relreplident()).toEqual({
    'ri_Odd name': 'f',
    ri_keyed: 'd',
    ri_keyless: 'f',
    ri_nothing: 'f',
  });
  // As the workflow's cleanup after the runner was killed: another session, knowing only the name.
  await withClient(pg, database, (c) => dropPublicationAndSlot(c, name));
  expect(await relreplident()).toEqual(before);
  const left = await withClient(pg, database, (c) => c.query('SELECT 1 FROM pg_publication'));
  expect(left.rows).toEqual([]);
  // Without the option nothing changes (the note records no table).
  expect(await withClient(pg, database, (c) => createPublication(c, name))).toEqual([]);
  expect(await relreplident()).toEqual(before);
  await withClient(pg, database, (c) => dropPublicationAndSlot(c, name));

  // A copy in the migration's snapshot (the target, a restore of the archive) carries the
  // publication and the identity: dropOwnPublications removes them, and no user's publication.
  await withClient(pg, database, (c) => createPublication(c, name, { replicaIdentityFull: true }));
  const other = replicationName('20261202T120000Z-d4e5f6');
  await withClient(pg, database, (c) =>
    c.query(`CREATE PUBLICATION users_pub FOR TABLE ri_keyed; CREATE PUBLICATION ${other} FOR TABLE ri_keyed;
             COMMENT ON PUBLICATION users_pub IS 'the users own'`),
  );
  const publications = () =>
    withClient(pg, database, (c) =>
      c.query<{ p: string }>('SELECT pubname AS p FROM pg_publication ORDER BY 1'),
    ).then((r) => r.rows.map((row) => row.p));
  // By its note, and by the name given (a publication without the note, as older versions left it).
  // `among` (a restore's: what its archive carries) leaves any other migration's publication alone.
  expect(await withClient(pg, database, (c) => dropOwnPublications(c, { among: [other] }))).toEqual([]);
  expect(await withClient(pg, database, (c) => dropOwnPublications(c, { among: [] }))).toEqual([]);
  expect(await publications()).toEqual([name, other, 'users_pub'].sort());
  expect(await withClient(pg, database, (c) => dropOwnPublications(c, { also: other }))).toEqual(
    [name, other].sort(),
  );
  expect(await relreplident()).toEqual(before);
  expect(await publications()).toEqual(['users_pub']);
  expect(await withClient(pg, database, (c) => dropOwnPublications(c))).toEqual([]);
  await withClient(pg, database, (c) => c.query('DROP PUBLICATION users_pub'));
});

test('the cutover sets every sequence to the source state, many to a statement', async () => {
  const source = uniqueName('seq_src');
  const target = uniqueName('seq_to');
  const count = 2 * SEQUENCES_PER_QUERY + 5;
  const ddl = Array.from({ length: count }, (_, i) => {
    const name = `"Séq ""${i}"""`;
    const step = i % 3 === 0 ? 'INCREMENT BY -2 MINVALUE -100000 MAXVALUE 10 START WITH 10' : '';
    return `CREATE SEQUENCE ${name} ${step};`;
  }).join('\n');
  await createDatabase(pg, source);
  await createDatabase(pg, target);
  try {
    await withClient(pg, target, (c) => c.query(ddl));
    const states = await withClient(pg, source, async (c) => {
      await c.query(ddl);
      // Some advanced by nextval, some set by setval(…, false): not called, their next value theirs.
      for (let i = 0; i < count; i += 7) {
        await c.query(`SELECT nextval('"Séq ""${i}"""') FROM generate_series(1, ${1 + (i % 5)})`);
      }
      for (let i = 1; i < count; i += 11) {
        const value = i % 3 === 0 ? -40 - i : 40 + i;
        await c.query(`SELECT setval('"Séq ""${i}"""', ${value}, false)`);
      }
      return sequenceStates(c);
    });
    const statements = await withClient(pg, target, async (c) => {
      const { counted, statements } = countingStatements(c);
      await setSequences(counted, states.values());
      return statements();
    });
    const after = await withClient(pg, target, (c) => sequenceStates(c));
    expect([...after.values()]).toEqual([...states.values()]);
    expect([...states.values()].some((s) => !s.isCalled && s.lastValue !== '1')).toBe(true);
    expect(statements).toBe(Math.ceil(count / SEQUENCES_PER_QUERY));
  } finally {
    await dropDatabase(pg, source);
    await dropDatabase(pg, target);
  }
}, 120_000);
