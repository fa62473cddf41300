/**
 * Comparing two databases for the fidelity tests (backup → restore, and migrate): a normalized
 * `pg_dump --schema-only`, the data state, and the complex database's roles.
 */
import { pgTool, runTool } from './cli';
import { quoteIdent, type TestPostgres, withClient } from './env';
import { fingerprint, largeObjectMetadata, materializedViews, sequenceStates } from './fingerprint';

/**
 * What is left of a plain `pg_dump --schema-only` once the lines that say nothing about the
 * database are removed:
 * - pg_dump's own comment lines (`--`, `-- Name: …; Type: …`, the header naming the server and
 *   pg_dump versions, the footer). Only these: a `--` comment inside a function body is part of the
 *   function and stays;
 * - session settings (`SET statement_timeout = 0;`, `SET default_tablespace = '';`, …) and
 *   `SELECT pg_catalog.set_config('search_path', '', false);`. `SET SESSION AUTHORIZATION` stays:
 *   it says who granted a privilege;
 * - `\restrict <key>` / `\unrestrict <key>` (newer pg_dump releases), whose key is random;
 * - runs of blank lines, which the removals leave behind, collapsed into one.
 */
export function normalizeSchemaDump(dump: string): string {
  const pgDumpComment =
    /^--( (Name|Data for Name|TOC entry|Dependencies|Started on|Completed on|PostgreSQL database dump|Dumped (from database|by pg_dump) version)\b.*)?$/;
  const kept = dump
    .split('\n')
    .filter(
      (line) =>
        !pgDumpComment.test(line) &&
        !(line.startsWith('SET ') && !line.startsWith('SET SESSION AUTHORIZATION ')) &&
        !line.startsWith('SELECT pg_catalog.set_config(') &&
        !/^\\(un)?restrict /.test(line),
    );
  const collapsed: string[] = [];
  for (const line of kept) {
    if (line === '' && collapsed.at(-1) === '') continue;
    collapsed.push(line);
  }
  return collapsed.join('\n').trim();
}

/** An identifier as pg_dump writes it: double-quoted when it has to be, bare otherwise. */
const IDENT = '(?:"(?:[^"]|"")*"|[a-z_][a-z0-9_]*)';

/**
 * Known artifact, not a difference: pg_dump lists the roles of `CREATE POLICY … TO a, b` in the
 * order it happens to read them from pg_roles (its query has no ORDER BY), i.e. the order the
 * roles were created on that server — which a restore has no say in: `--with-globals` creates them
 * in pg_dumpall's order (by name). The policy applies to the same set of roles either way, so the
 * list is sorted, on both sides.
 */
export function sortPolicyRoles(dump: string): string {
  const toClause = new RegExp(
    `^(CREATE POLICY .*? TO )(${IDENT}(?:, ${IDENT})*)(?=( USING | WITH CHECK |;$))`,
    'gm',
  );
  return dump.replace(toClause, (_, head: string, list: string) => {
    const roles = list.match(new RegExp(IDENT, 'g')) ?? [];
    return head + roles.sort().join(', ');
  });
}

/**
 * Known version artifact, not a difference: from PostgreSQL 16 on, the server's view deparser
 * (pg_get_viewdef, which pg_dump uses) no longer table-qualifies column references in a query whose
 * FROM has a single relation (`SELECT id FROM app.orders`, where 14 and 15 print
 * `SELECT orders.id FROM app.orders`). Applied only to the dump of a source older than 16 compared
 * with a target of 16 or newer, and only to view and materialized view definitions with exactly one
 * FROM naming one relation (no join, no subquery), where the qualifier cannot change the meaning.
 */
export function unqualifySingleRelationViews(dump: string): string {
  return dump.replace(
    /^(CREATE (?:MATERIALIZED )?VIEW .* AS\n)([\s\S]*?;)$/gm,
    (whole, head: string, body: string) => {
      const froms = [...body.matchAll(/^\s+FROM (.*)$/gm)];
      if (froms.length !== 1 || /\bJOIN\b/.test(body)) return whole;
      const from = new RegExp(`^(?:${IDENT}\\.)?(${IDENT});?$`).exec(froms[0][1]);
      if (!from) return whole;
      const qualifier = from[1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return head + body.replace(new RegExp(`(?<=[\\s(,])${qualifier}\\.(?=${IDENT})`, 'g'), '');
    },
  );
}

/**
 * `pg_dump --schema-only` of `database` on `pg`, normalized, by the pg_dump of `dumpMajor` (or the
 * closest newer one). `comparedWith` is the major of the server whose dump this one is compared with.
 */
export async function schemaDump(
  pg: TestPostgres,
  database: string,
  dumpMajor: number,
  comparedWith: number,
): Promise<string> {
  const { stdout } = await runTool(pgTool('pg_dump', dumpMajor), ['--schema-only'], pg.env(database));
  let dump = sortPolicyRoles(normalizeSchemaDump(stdout.toString('utf8')));
  if (pg.major < 16 && comparedWith >= 16) dump = unqualifySingleRelationViews(dump);
  return dump;
}

/** Everything value-like in a database: table rows, sequences, large objects, materialized views. */
export async function dataState(pg: TestPostgres, database: string) {
  return {
    fingerprint: await fingerprint(pg, database),
    sequences: await sequenceStates(pg, database),
    largeObjects: await largeObjectMetadata(pg, database),
    materializedViews: await materializedViews(pg, database),
  };
}

/** The three roles of the complex database: owner, reader, writer (a member of reader). */
export async function createRoles(pg: TestPostgres, [owner, reader, writer]: string[]): Promise<void> {
  await withClient(pg, 'postgres', (c) =>
    c.query(`
      CREATE ROLE ${quoteIdent(owner)} NOLOGIN;
      CREATE ROLE ${quoteIdent(reader)} NOLOGIN CONNECTION LIMIT 3;
      CREATE ROLE ${quoteIdent(writer)} NOLOGIN;
      GRANT ${quoteIdent(reader)} TO ${quoteIdent(writer)};
      ALTER ROLE ${quoteIdent(reader)} SET statement_timeout = '5min';`),
  );
}

/** Drops those of `roles` that exist on `pg` (their databases must be gone already). */
export async function dropRoles(pg: TestPostgres, roles: string[]): Promise<void> {
  await withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE rolname = ANY($1)',
      [roles],
    );
    for (const { rolname } of rows) {
      await c.query(`DROP OWNED BY ${quoteIdent(rolname)}; DROP ROLE ${quoteIdent(rolname)}`);
    }
  });
}

/** The roles' attributes and memberships among them, as a server has them. */
export async function roleState(pg: TestPostgres, roles: string[]) {
  return withClient(pg, 'postgres', async (c) => {
    const attributes = await c.query(
      `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
              rolconnlimit, rolbypassrls, rolconfig
       FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1`,
      [roles],
    );
    const memberships = await c.query(
      `SELECT r.rolname AS role, m.rolname AS member, am.admin_option
       FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
       WHERE r.rolname = ANY($1) OR m.rolname = ANY($1) ORDER BY 1, 2`,
      [roles],
    );
    return { attributes: attributes.rows, memberships: memberships.rows };
  });
}
