/** A digest of a database's contents, to compare a restore with its source value by value. */
import { quoteIdent, type TestPostgres, withClient } from './env';

export interface Fingerprint {
  tables: { schema: string; name: string; rows: number; digest: string | null }[];
  largeObjects: { oid: string; digest: string }[];
  sequences: { schema: string; name: string; last_value: string | null }[];
}

export async function fingerprint(pg: TestPostgres, database: string): Promise<Fingerprint> {
  return withClient(pg, database, async (c) => {
    const { rows: names } = await c.query<{ schema: string; name: string }>(`
      SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`);
    const tables: Fingerprint['tables'] = [];
    for (const { schema, name } of names) {
      const { rows } = await c.query<{ rows: number; digest: string | null }>(
        `SELECT count(*)::int AS rows, md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS digest
         FROM ONLY ${quoteIdent(schema)}.${quoteIdent(name)} t`,
      );
      tables.push({ schema, name, ...rows[0] });
    }
    const largeObjects = await c.query<{ oid: string; digest: string }>(
      'SELECT oid::text, md5(lo_get(oid)) AS digest FROM pg_largeobject_metadata ORDER BY oid',
    );
    const sequences = await c.query<{ schema: string; name: string; last_value: string | null }>(
      'SELECT schemaname AS schema, sequencename AS name, last_value::text FROM pg_sequences ORDER BY 1, 2',
    );
    return { tables, largeObjects: largeObjects.rows, sequences: sequences.rows };
  });
}

/** Every sequence's state as `SELECT last_value, is_called FROM <sequence>` reads it. */
export async function sequenceStates(
  pg: TestPostgres,
  database: string,
): Promise<{ schema: string; name: string; last_value: string; is_called: boolean }[]> {
  return withClient(pg, database, async (c) => {
    const { rows: names } = await c.query<{ schema: string; name: string }>(`
      SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' ORDER BY 1, 2`);
    const out = [];
    for (const { schema, name } of names) {
      const { rows } = await c.query<{ last_value: string; is_called: boolean }>(
        `SELECT last_value::text, is_called FROM ${quoteIdent(schema)}.${quoteIdent(name)}`,
      );
      out.push({ schema, name, ...rows[0] });
    }
    return out;
  });
}

/** Every materialized view: whether it is populated and, if so, a digest of its rows in a fixed order. */
export async function materializedViews(
  pg: TestPostgres,
  database: string,
): Promise<
  { schema: string; name: string; populated: boolean; rows: number | null; digest: string | null }[]
> {
  return withClient(pg, database, async (c) => {
    const { rows: views } = await c.query<{ schema: string; name: string; populated: boolean }>(`
      SELECT schemaname AS schema, matviewname AS name, ispopulated AS populated FROM pg_matviews ORDER BY 1, 2`);
    const out = [];
    for (const view of views) {
      if (!view.populated) {
        out.push({ ...view, rows: null, digest: null });
        continue;
      }
      const { rows } = await c.query<{ rows: number; digest: string | null }>(
        `SELECT count(*)::int AS rows, md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS digest
         FROM ${quoteIdent(view.schema)}.${quoteIdent(view.name)} t`,
      );
      out.push({ ...view, ...rows[0] });
    }
    return out;
  });
}

/** Every large object's owner, privileges and comment (its contents are in {@link fingerprint}). */
export async function largeObjectMetadata(
  pg: TestPostgres,
  database: string,
): Promise<{ oid: string; owner: string; acl: string | null; comment: string | null }[]> {
  return withClient(pg, database, async (c) => {
    const { rows } = await c.query<{
      oid: string;
      owner: string;
      acl: string | null;
      comment: string | null;
    }>(`
      SELECT oid::text, pg_get_userbyid(lomowner) AS owner, lomacl::text AS acl,
             obj_description(oid, 'pg_largeobject') AS comment
      FROM pg_largeobject_metadata ORDER BY oid`);
    return rows;
  });
}
