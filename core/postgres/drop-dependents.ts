/**
 * What stops `pg_restore --clean` midway: it drops each of the archive's objects that exists in
 * the target (`DROP … IF EXISTS`, never CASCADE, one transaction each), so an object of the target
 * that is not in the archive but depends on one that is — a view on a table, a foreign key from
 * another table, a column of a type, a table in a schema the archive replaces — makes one DROP
 * fail after the ones before it took effect. Found beforehand here, from the catalog, so that the
 * restore can refuse while nothing is changed.
 */
import type { Client } from 'pg';
import { PgferryError } from '../errors';
import type { ArchiveTocEntry } from './archive';
import { quoteIdent } from './quote';

/** An object of the target that would block the drops, and what of the archive's it depends on. */
export interface DropBlocker {
  /** As PostgreSQL describes it, schema-qualified: `view public.totals`, `constraint f on table public.o`. */
  object: string;
  /** What it depends on that would be dropped: `table public.orders`. */
  dependsOn: string[];
}

/** pg_dump's kinds folded to the catalog's: a constraint is a constraint whatever its section. */
const KIND_OF_DESC: Record<string, string> = {
  TABLE: 'TABLE',
  VIEW: 'VIEW',
  'MATERIALIZED VIEW': 'MATERIALIZED VIEW',
  SEQUENCE: 'SEQUENCE',
  'FOREIGN TABLE': 'FOREIGN TABLE',
  INDEX: 'INDEX',
  FUNCTION: 'FUNCTION',
  PROCEDURE: 'FUNCTION',
  AGGREGATE: 'FUNCTION',
  TYPE: 'TYPE',
  DOMAIN: 'DOMAIN',
  SCHEMA: 'SCHEMA',
  EXTENSION: 'EXTENSION',
  CONSTRAINT: 'CONSTRAINT',
  'FK CONSTRAINT': 'CONSTRAINT',
  'CHECK CONSTRAINT': 'CONSTRAINT',
  TRIGGER: 'TRIGGER',
  RULE: 'RULE',
  POLICY: 'POLICY',
  COLLATION: 'COLLATION',
};

/**
 * The target's objects, named as pg_dump names them in its TOC (kind, schema, tag); run with an
 * empty search_path, as pg_dump's session is, so that argument types are qualified alike.
 */
const NAMED_OBJECTS = `
  SELECT 'pg_class'::regclass AS classid, c.oid AS objid,
         CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
           WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
           ELSE 'INDEX' END AS kind,
         n.nspname::text AS ns, c.relname::text AS tag
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I')
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid, 'FUNCTION', n.nspname,
         p.proname || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')'
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  UNION ALL
  SELECT 'pg_type'::regclass, t.oid, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE t.typtype IN ('b', 'd', 'e', 'r', 'm')
      OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
  UNION ALL
  SELECT 'pg_namespace'::regclass, n.oid, 'SCHEMA', NULL, n.nspname FROM pg_namespace n
  UNION ALL
  SELECT 'pg_extension'::regclass, x.oid, 'EXTENSION', NULL, x.extname FROM pg_extension x
  UNION ALL
  SELECT 'pg_constraint'::regclass, k.oid, 'CONSTRAINT', n.nspname,
         coalesce(c.relname, t.typname) || ' ' || k.conname
    FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
    LEFT JOIN pg_class c ON c.oid = k.conrelid LEFT JOIN pg_type t ON t.oid = k.contypid
  UNION ALL
  SELECT 'pg_trigger'::regclass, g.oid, 'TRIGGER', n.nspname, c.relname || ' ' || g.tgname
    FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE NOT g.tgisinternal
  UNION ALL
  SELECT 'pg_rewrite'::regclass, r.oid, 'RULE', n.nspname, c.relname || ' ' || r.rulename
    FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE r.rulename <> '_RETURN'
  UNION ALL
  SELECT 'pg_policy'::regclass, p.oid, 'POLICY', n.nspname, c.relname || ' ' || p.polname
    FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'pg_collation'::regclass, l.oid, 'COLLATION', n.nspname, l.collname
    FROM pg_collation l JOIN pg_namespace n ON n.oid = l.collnamespace`;

/**
 * Catalogs of the objects whose presence in the archive can be told (they are named above, or are
 * parts of a table): a dependent of another kind (a cast, an operator, a publication, …) is not
 * reported, since it may be in the archive too — pg_restore itself finds out.
 */
const COMPARABLE_CATALOGS = [
  'pg_class',
  'pg_proc',
  'pg_type',
  'pg_constraint',
  'pg_trigger',
  'pg_rewrite',
  'pg_policy',
  'pg_attrdef',
  'pg_collation',
];

/**
 * The objects of the target that depend, in a way that stops a plain DROP, on objects that `pg_restore
 * --clean` of `dropped` (see `droppedByClean`) would drop, and that would not be dropped themselves:
 * those not in the archive, nor parts of what is (a table's columns, indexes, constraints,
 * triggers, a view's rule, an extension's members). Empty: the drops will not be stopped by
 * dependencies. `client` is connected to the target database; nothing is changed or locked.
 */
export async function dropBlockers(
  client: Client,
  dropped: readonly ArchiveTocEntry[],
): Promise<DropBlocker[]> {
  const entries = dropped.flatMap(({ desc, namespace, tag }) =>
    desc !== null && tag !== null && Object.hasOwn(KIND_OF_DESC, desc)
      ? [{ kind: KIND_OF_DESC[desc], ns: namespace, tag }]
      : [],
  );
  if (entries.length === 0) return [];
  await client.query('BEGIN READ ONLY');
  try {
    await client.query("SET LOCAL search_path = ''");
    const { rows } = await client.query<{ object: string; depends_on: string[] }>(
      `WITH RECURSIVE
         entries AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS e(kind text, ns text, tag text)),
         named AS (${NAMED_OBJECTS}),
         dropped AS (
           SELECT DISTINCT o.classid, o.objid FROM named o
             JOIN entries e ON e.kind = o.kind AND e.tag = o.tag AND e.ns IS NOT DISTINCT FROM o.ns),
         -- What goes with them: parts (auto, internal, partition) and extension members.
         closure AS (
           SELECT classid, objid FROM dropped
           UNION
           SELECT d.classid, d.objid FROM pg_depend d
             JOIN closure c ON d.refclassid = c.classid AND d.refobjid = c.objid
            WHERE d.deptype IN ('a', 'i', 'e', 'P', 'S')),
         blocking AS (
           SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid FROM pg_depend d
             JOIN closure c ON d.refclassid = c.classid AND d.refobjid = c.objid
            WHERE d.deptype = 'n'
              AND d.classid = ANY ($2::regclass[])
              AND NOT EXISTS (SELECT 1 FROM closure x WHERE x.classid = d.classid AND x.objid = d.objid)),
         described AS (
           SELECT CASE WHEN b.classid = 'pg_rewrite'::regclass
                    THEN pg_describe_object('pg_class'::regclass, (SELECT ev_class FROM pg_rewrite WHERE oid = b.objid), 0)
                    ELSE pg_describe_object(b.classid, b.objid, b.objsubid) END AS object,
                  pg_describe_object(b.refclassid, b.refobjid, 0) AS depends_on
             FROM blocking b)
       SELECT object, array_agg(DISTINCT depends_on ORDER BY depends_on) AS depends_on
         FROM described GROUP BY object ORDER BY object`,
      [JSON.stringify(entries), COMPARABLE_CATALOGS],
    );
    return rows.map((r) => ({ object: r.object, dependsOn: r.depends_on }));
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

/** `view public.v (on table public.t); …`, at most `max` of them. */
export function describeDropBlockers(blockers: readonly DropBlocker[], max = 10): string {
  const shown = blockers.slice(0, max).map((b) => `${b.object} (on ${b.dependsOn.slice(0, 3).join(', ')})`);
  const more = blockers.length > max ? `, and ${blockers.length - max} more` : '';
  return `${shown.join('; ')}${more}`;
}

/**
 * Refuses a clean restore of `database` that `blockers` would stop midway; `done` says what was
 * not done (`nothing was dropped`).
 */
export function refuseBlockedCleanRestore(
  database: string,
  blockers: readonly DropBlocker[],
  done: string,
): never {
  throw new PgferryError(
    'TargetRefused',
    `a clean restore of ${quoteIdent(database)} would have to drop what objects of it that are not in the backup ` +
      `depend on: ${describeDropBlockers(blockers)}; ${done}. Drop or change those objects first, or restore into a ` +
      'new database (--mode create)',
  );
}
