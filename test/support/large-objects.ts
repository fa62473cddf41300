/**
 * A database of many large objects as the large-object tests make it (a table `docs` referencing
 * them, half owned by another role, one with a comment, one with a grant), and what they compare:
 * every object's metadata and contents, and the transactions a database has committed.
 */
import { quoteIdent, type TestPostgres, withClient } from './env';

/** The SQL that makes `docs` and its `count` large objects; `owner` and `reader` must exist. */
export function largeObjectsSeed(count: number, owner: string, reader: string): string {
  return `CREATE TABLE docs (id int PRIMARY KEY, lo oid);
     INSERT INTO docs SELECT g, lo_from_bytea(0, convert_to(repeat(md5(g::text), 1 + g % 7), 'UTF8'))
       FROM generate_series(1, ${count}) g;
     DO $$ DECLARE o oid; BEGIN
       FOR o IN SELECT lo FROM docs WHERE id % 2 = 0 LOOP
         EXECUTE format('ALTER LARGE OBJECT %s OWNER TO ${quoteIdent(owner)}', o);
       END LOOP;
       EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT lo FROM docs WHERE id = 7), 'seventh');
       EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO ${quoteIdent(reader)}', (SELECT lo FROM docs WHERE id = 8));
     END $$;`;
}

/** Every large object of `name`: its oid, owner, privileges, comment and contents' MD5. */
export function largeObjectRows(pg: TestPostgres, name: string) {
  return withClient(pg, name, async (c) => {
    const { rows } = await c.query(
      `SELECT m.oid::text, m.lomowner::regrole::text AS owner, m.lomacl::text AS acl,
              obj_description(m.oid, 'pg_largeobject') AS comment, md5(lo_get(m.oid)) AS md5
       FROM pg_largeobject_metadata m ORDER BY m.oid`,
    );
    return rows;
  });
}

/** The transactions `name` has committed, once every session of a restore has ended. */
export function commitsIn(pg: TestPostgres, name: string) {
  return withClient(pg, 'postgres', async (c) => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await c.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await c.query<{ n: string }>(
      'SELECT xact_commit AS n FROM pg_stat_database WHERE datname = $1',
      [name],
    );
    return Number(rows[0].n);
  });
}
