/**
 * `holdAutovacuum` and `releaseAutovacuum` (core/postgres/autovacuum-hold.ts) on a real server:
 * the hold sets `autovacuum_enabled = false` (and the TOAST table's) only where a table's options
 * do not set it, skips what the session may not alter and what takes no such option (partitioned
 * tables), and the release leaves every relation's options exactly as they were — a table's own
 * `autovacuum_enabled = true` or `= false`, its fillfactor, its TOAST table's own setting — in
 * batches of statements, thousands of tables too.
 */
import type { Client } from 'pg';
import {
  type HeldTable,
  HOLD_BATCH_TABLES,
  holdAutovacuum,
  releaseAutovacuum,
} from '../../../../core/postgres/autovacuum-hold';
import {
  createDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('autovac_hold');
const stranger = uniqueName('autovac_stranger');

const SCHEMA = `
  CREATE SCHEMA "odd ""schema""";
  CREATE TABLE plain (id integer PRIMARY KEY, v text);
  CREATE TABLE no_toast (id integer);
  CREATE TABLE own_off (id integer, v text) WITH (fillfactor = 70, autovacuum_enabled = false);
  CREATE TABLE own_on (id integer, v text) WITH (autovacuum_enabled = true, autovacuum_vacuum_scale_factor = 0.05);
  CREATE TABLE toast_own (v text) WITH (toast.autovacuum_enabled = true, fillfactor = 90);
  CREATE TABLE "odd ""schema"""."tåble one" (v text);
  CREATE UNLOGGED TABLE scratch (id integer);
  CREATE TABLE p (id integer, v text) PARTITION BY RANGE (id);
  CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
  CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000) WITH (autovacuum_enabled = false);
  CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM plain;
  CREATE TABLE not_mine (id integer);
  ALTER TABLE not_mine OWNER TO ${quoteIdent(stranger)};`;

/** Every relation's options outside the system schemas (TOAST tables by their table's name). */
async function allOptions(c: Client): Promise<Record<string, string[] | null>> {
  const { rows } = await c.query<{ name: string; reloptions: string[] | null }>(`
    SELECT format('%I.%I', n.nspname, c.relname) AS name, c.reloptions FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'm', 'p')
    UNION ALL
    SELECT format('%I.%I (toast)', n.nspname, c.relname), t.reloptions FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class t ON t.oid = c.reltoastrelid
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`);
  return Object.fromEntries(rows.map((r) => [r.name, r.reloptions]));
}

/** The statements sent on `c` from now on. */
function recordQueries(c: Client): string[] {
  const sent: string[] = [];
  const query = c.query.bind(c) as (text: string) => Promise<unknown>;
  (c as unknown as { query: (text: string) => Promise<unknown> }).query = (text: string) => {
    sent.push(text);
    return query(text);
  };
  return sent;
}

beforeAll(async () => {
  await withClient(pg, 'postgres', (c) => c.query(`CREATE ROLE ${quoteIdent(stranger)} NOLOGIN`));
  await createDatabase(pg, database);
  await withClient(pg, database, (c) => c.query(SCHEMA));
});
afterAll(async () => {
  await dropDatabase(pg, database);
  await withClient(pg, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(stranger)}`));
});

test("it sets the options only where a table's own do not, and the release leaves every relation as it was", async () => {
  await withClient(pg, database, async (c) => {
    const before = await allOptions(c);
    const held = await holdAutovacuum(c);
    const by = Object.fromEntries(held.map((t) => [t.name, t]));
    expect(by).toEqual({
      'public.plain': { name: 'public.plain', table: true, toast: true },
      'public.no_toast': { name: 'public.no_toast', table: true, toast: false },
      // Its own autovacuum_enabled = false stays; its TOAST table's is held.
      'public.own_off': { name: 'public.own_off', table: false, toast: true },
      'public.own_on': { name: 'public.own_on', table: false, toast: true },
      'public.toast_own': { name: 'public.toast_own', table: true, toast: false },
      '"odd ""schema"""."tåble one"': { name: '"odd ""schema"""."tåble one"', table: true, toast: true },
      'public.scratch': { name: 'public.scratch', table: true, toast: false },
      'public.p1': { name: 'public.p1', table: true, toast: true },
      'public.p2': { name: 'public.p2', table: false, toast: true },
      'public.mv': { name: 'public.mv', table: true, toast: true },
      // A superuser may alter a table it does not own.
      'public.not_mine': { name: 'public.not_mine', table: true, toast: false },
    });
    const during = await allOptions(c);
    expect(during['public.plain']).toEqual(['autovacuum_enabled=false']);
    expect(during['public.plain (toast)']).toEqual(['autovacuum_enabled=false']);
    expect(during['public.own_off']).toEqual(['fillfactor=70', 'autovacuum_enabled=false']);
    expect(during['public.own_on']).toEqual([
      'autovacuum_enabled=true',
      'autovacuum_vacuum_scale_factor=0.05',
    ]);
    expect(during['public.own_on (toast)']).toEqual(['autovacuum_enabled=false']);
    expect(during['public.toast_own']).toEqual(['fillfactor=90', 'autovacuum_enabled=false']);
    expect(during['public.toast_own (toast)']).toEqual(['autovacuum_enabled=true']);
    expect(during['public.mv']).toEqual(['autovacuum_enabled=false']);
    // The partitioned table takes no such option: its partitions are held.
    expect(during['public.p']).toBeNull();
    expect(during['public.p1']).toEqual(['autovacuum_enabled=false']);

    await releaseAutovacuum(c, held);
    expect(await allOptions(c)).toEqual(before);
  });
}, 60_000);

test("the database's own event triggers do not fire on its ALTERs", async () => {
  await withClient(pg, database, async (c) => {
    await c.query(`
      CREATE TABLE ddl_log (tag text);
      CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO ddl_log VALUES (tg_tag); END $$;
      CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION log_ddl();`);
    try {
      const held = await holdAutovacuum(c);
      expect(held.length).toBeGreaterThan(0);
      await releaseAutovacuum(c, held);
      expect((await c.query('SELECT tag FROM ddl_log')).rows).toEqual([]);
      // It fires on other DDL: it is there.
      await c.query('ALTER TABLE ddl_log SET (fillfactor = 90)');
      expect((await c.query('SELECT tag FROM ddl_log')).rows).toEqual([{ tag: 'ALTER TABLE' }]);
      expect((await c.query('SHOW session_replication_role')).rows).toEqual([
        { session_replication_role: 'origin' },
      ]);
    } finally {
      await c.query('DROP EVENT TRIGGER log_ddl; DROP FUNCTION log_ddl(); DROP TABLE ddl_log');
    }
  });
}, 60_000);

test('a session that may not alter a table leaves it alone', async () => {
  await withClient(pg, database, async (c) => {
    const before = await allOptions(c);
    await c.query(`GRANT CREATE ON SCHEMA public TO ${quoteIdent(stranger)}`);
    await c.query(`SET ROLE ${quoteIdent(stranger)}`);
    try {
      const held = await holdAutovacuum(c);
      expect(held.map((t) => t.name)).toEqual(['public.not_mine']);
      await releaseAutovacuum(c, held);
    } finally {
      await c.query('RESET ROLE');
      await c.query(`REVOKE CREATE ON SCHEMA public FROM ${quoteIdent(stranger)}`);
    }
    expect(await allOptions(c)).toEqual(before);
  });
}, 60_000);

test('thousands of tables: a batch of statements per round trip, and all of them given back', async () => {
  const many = uniqueName('autovac_many');
  const tables = 2 * HOLD_BATCH_TABLES + 150;
  await createDatabase(pg, many);
  try {
    await withClient(pg, many, async (c) => {
      await c.query(`DO $$ BEGIN
        FOR i IN 1..${tables} LOOP EXECUTE format('CREATE TABLE t%s (id integer, v text)', i); END LOOP;
      END $$`);
      const before = await allOptions(c);
      const sent = recordQueries(c);
      let held: HeldTable[] = [];
      held = await holdAutovacuum(c);
      expect(held.length).toBe(tables);
      // The catalog read, whether a superuser, then one statement string per batch.
      expect(sent.length).toBe(2 + Math.ceil(tables / HOLD_BATCH_TABLES));
      const during = await allOptions(c);
      expect(Object.values(during).every((o) => o?.join() === 'autovacuum_enabled=false')).toBe(true);
      sent.length = 0;
      await releaseAutovacuum(c, held);
      expect(sent.length).toBe(1 + Math.ceil(tables / HOLD_BATCH_TABLES));
      expect(await allOptions(c)).toEqual(before);
    });
  } finally {
    await dropDatabase(pg, many);
  }
}, 120_000);
