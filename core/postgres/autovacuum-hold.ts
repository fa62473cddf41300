/**
 * Holding autovacuum off the tables of a database being loaded, and giving them back exactly the
 * storage options they had. While a restore or migration loads a database, autovacuum starts
 * `VACUUM ANALYZE` on the freshly loaded tables: the loader's `ALTER TABLE … ADD CONSTRAINT …
 * PRIMARY KEY` and its own `ANALYZE` then wait for it for `deadlock_timeout` before the server
 * cancels it ("canceling autovacuum task"), and it burns CPU on half-loaded tables meanwhile.
 *
 * The hold sets `autovacuum_enabled = false` (and `toast.autovacuum_enabled = false`) only where
 * the table's options (as the dump's pre-data created them) do not set it, remembers exactly what
 * it set, and the release resets exactly that: a table whose dump set either option keeps the
 * dump's value throughout.
 */
import type { Client } from 'pg';

/** A table the hold changed, and which of its two options it set. */
export interface HeldTable {
  /** Schema-qualified, quoted. */
  name: string;
  /** `autovacuum_enabled` was set (the table's own options did not set it). */
  table: boolean;
  /** `toast.autovacuum_enabled` was set (it has a TOAST table whose options did not set it). */
  toast: boolean;
}

/**
 * How many tables one statement string (one round trip, one transaction) alters: each ALTER
 * keeps its table's lock (and its TOAST table's) until the transaction ends, and one transaction
 * holding thousands of them can run out of the server's shared lock table
 * (`max_locks_per_transaction` × `max_connections`, 6,400 by default).
 */
export const HOLD_BATCH_TABLES = 200;

/** `autovacuum_enabled=…` in a `reloptions` array. */
const setsAutovacuum = (reloptions: string) =>
  `EXISTS (SELECT FROM unnest(${reloptions}) o WHERE o LIKE 'autovacuum\\_enabled=%')`;

/**
 * Holds autovacuum off every table and materialized view of the client's database whose options
 * do not already decide it, that the session may alter (it owns them, or is a member of their
 * owner's role; a superuser may alter all). Materialized views too: pg_restore fills them (their
 * `REFRESH`) during the post-data, autovacuum visits them as it does tables, and the load's
 * `ANALYZE` analyzes them. Partitioned tables take no such option (their partitions are tables);
 * foreign tables are never vacuumed. Returns what it set, for {@link releaseAutovacuum}; on a
 * failure, what it had set already is reset (as far as it can be) before the error is thrown.
 */
export async function holdAutovacuum(client: Client): Promise<HeldTable[]> {
  const { rows } = await client.query<HeldTable>(`
    SELECT name, "table", toast FROM (
      SELECT format('%I.%I', n.nspname, c.relname) AS name,
             NOT ${setsAutovacuum('c.reloptions')} AS "table",
             t.oid IS NOT NULL AND NOT ${setsAutovacuum('t.reloptions')} AS toast
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
        WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND pg_has_role(c.relowner, 'USAGE')) r
      WHERE "table" OR toast
      ORDER BY name`);
  const held: HeldTable[] = [];
  try {
    await alterInBatches(
      client,
      rows,
      (t) => `SET (${options(t, ' = false')})`,
      (batch) => held.push(...batch),
    );
  } catch (err) {
    await releaseAutovacuum(client, held).catch(() => undefined);
    throw err;
  }
  return held;
}

/** Resets exactly the options {@link holdAutovacuum} set, nothing else. */
export async function releaseAutovacuum(client: Client, held: readonly HeldTable[]): Promise<void> {
  await alterInBatches(client, held, (t) => `RESET (${options(t, '')})`);
}

/**
 * `ALTER TABLE <table> <action>` for every table, {@link HOLD_BATCH_TABLES} a statement string;
 * `done` is told of each batch once it committed.
 */
async function alterInBatches(
  client: Client,
  tables: readonly HeldTable[],
  action: (t: HeldTable) => string,
  done?: (batch: readonly HeldTable[]) => void,
): Promise<void> {
  const quiet = tables.length ? await quietEventTriggers(client) : false;
  for (let i = 0; i < tables.length; i += HOLD_BATCH_TABLES) {
    const batch = tables.slice(i, i + HOLD_BATCH_TABLES);
    await client.query(
      statements(
        batch.map((t) => `ALTER TABLE ${t.name} ${action(t)}`),
        quiet,
      ),
    );
    done?.(batch);
  }
}

/**
 * Whether the session may keep the database's own event triggers from firing on these ALTERs
 * (`session_replication_role = replica`, a superuser's setting): by the release the post-data has
 * created them, and one that logs DDL into a table would add rows the dump never had. (An event
 * trigger enabled `ALWAYS` still fires, as it would on a replica.)
 */
async function quietEventTriggers(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ superuser: boolean }>(
    "SELECT current_setting('is_superuser') = 'on' AS superuser",
  );
  return rows[0].superuser;
}

/**
 * One statement string: one round trip and one (implicit) transaction, which a failure rolls back
 * whole; a `SET LOCAL` lasts until its end.
 */
function statements(alters: string[], quiet: boolean): string {
  return [...(quiet ? ['SET LOCAL session_replication_role = replica'] : []), ...alters].join(';\n');
}

function options(t: HeldTable, value: string): string {
  return [
    ...(t.table ? [`autovacuum_enabled${value}`] : []),
    ...(t.toast ? [`toast.autovacuum_enabled${value}`] : []),
  ].join(', ');
}
