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
