/**
 * What `pg_restore --clean` of an archive will drop, known from its first bytes — before the
 * archive is downloaded. pg_dump writing to a pipe (as pgferry's dumps do) puts the whole table of
 * contents at the start, before any data; core/postgres/archive.ts reads it.
 */
import type { Readable } from 'node:stream';
import { PgferryError } from '../errors';
import { ArchiveFormatError, ArchiveScanner, type ArchiveTocEntry } from './archive';

function unreadable(detail: string): PgferryError {
  return new PgferryError('BackupCorrupt', `the archive's table of contents cannot be read: ${detail}`);
}

/**
 * Reads the TOC from the start of a custom-format archive, consuming no more of `input` than it
 * needs (the stream is destroyed once the TOC is read). Throws `BackupCorrupt` on bytes
 * that are not such an archive, that end before the TOC does, or of a format version it does not
 * know; an error of `input` itself is passed on as it is.
 */
export async function readArchiveToc(input: Readable): Promise<ArchiveTocEntry[]> {
  let toc: ArchiveTocEntry[] | undefined;
  const scanner = new ArchiveScanner((entries) => {
    toc = entries;
  });
  for await (const chunk of input) {
    try {
      scanner.write(chunk as Buffer);
    } catch (err) {
      // What follows the TOC (its data blocks) is none of this reader's business.
      if (toc) return toc;
      if (err instanceof ArchiveFormatError) throw unreadable(err.detail);
      throw err;
    }
    if (toc) return toc;
  }
  throw unreadable('it ends before its table of contents does');
}

/** The relation kinds `pg_restore --table` selects (as pg_restore's `_tocEntryRequired`). */
const TABLE_LIKE = new Set([
  'TABLE',
  'TABLE DATA',
  'VIEW',
  'FOREIGN TABLE',
  'MATERIALIZED VIEW',
  'MATERIALIZED VIEW DATA',
  'SEQUENCE',
  'SEQUENCE SET',
]);

/**
 * The entries `pg_restore --clean` drops given `--schema`/`--table` selections, as pg_restore
 * selects them: with schemas, only entries in one of them; with tables, only relations of those
 * names (and nothing else); of those, the ones with a drop statement (the database's own entry
 * only with `--create`, which pgferry never passes).
 */
export function droppedByClean(
  toc: readonly ArchiveTocEntry[],
  selection: { schemas: readonly string[]; tables: readonly string[] },
): ArchiveTocEntry[] {
  return toc.filter((e) => {
    if (!e.dropped || e.desc === 'DATABASE') return false;
    if (selection.schemas.length && (e.namespace === null || !selection.schemas.includes(e.namespace)))
      return false;
    if (selection.tables.length && (!TABLE_LIKE.has(e.desc ?? '') || !selection.tables.includes(e.tag ?? '')))
      return false;
    return true;
  });
}

/** The entries of a schema's own that pg_dump writes beside its SCHEMA entry, depending on it alone. */
const SCHEMA_OWN = new Set(['COMMENT', 'ACL', 'SECURITY LABEL']);

/**
 * The schemas a `--schema`/`--table` selection restores into, each with its own entries as the
 * archive has them: its SCHEMA entry (`CREATE SCHEMA`, its owner) and its comment, grants and
 * security labels. pg_restore's `-n` and `-t` select neither (a schema is in no schema, and is no
 * table), so restoring them from a whole-database archive into a database without the schema
 * fails with `schema "…" does not exist`. The schemas are those `--schema` names; with `--table`
 * alone, those of the relations it selects. A schema without a SCHEMA entry (a `--table` backup's:
 * see {@link schemasNotCreated}) is not among them.
 */
export function selectedSchemaEntries(
  toc: readonly ArchiveTocEntry[],
  selection: { schemas: readonly string[]; tables: readonly string[] },
): { schema: string; ids: number[] }[] {
  const wanted = selection.schemas.length
    ? new Set(selection.schemas)
    : new Set(
        toc
          .filter(
            (e) => TABLE_LIKE.has(e.desc ?? '') && selection.tables.includes(e.tag ?? '') && e.namespace,
          )
          .map((e) => e.namespace as string),
      );
  return toc
    .filter((e) => e.desc === 'SCHEMA' && e.tag !== null && wanted.has(e.tag))
    .map((schema) => ({
      schema: schema.tag as string,
      ids: [
        schema.dumpId,
        ...toc
          .filter(
            (e) =>
              SCHEMA_OWN.has(e.desc ?? '') && e.namespace === null && e.dependencies.includes(schema.dumpId),
          )
          .map((e) => e.dumpId),
      ],
    }));
}

/** Schemas that come with every database: never created for an archive. */
const BUILT_IN_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'pg_toast', 'public']);

/**
 * The schemas an archive's objects live in but that it does not create: a dump made with
 * `pg_dump --table` holds the tables and not their schemas, so restoring one into a database
 * without them fails ("schema … does not exist"). In the order first met.
 */
export function schemasNotCreated(toc: readonly ArchiveTocEntry[]): string[] {
  const created = new Set(toc.filter((e) => e.desc === 'SCHEMA').map((e) => e.tag));
  const needed = new Set<string>();
  for (const e of toc) {
    if (e.namespace && !created.has(e.namespace) && !BUILT_IN_SCHEMAS.has(e.namespace))
      needed.add(e.namespace);
  }
  return [...needed];
}

/**
 * `ids` (an archive's entries, in the order pg_restore is to take them) reordered so that
 * `pg_restore --clean` can drop them: it drops in reverse order, and a partition's index or
 * primary key, attached to its parent's (`INDEX ATTACH`), cannot be dropped on its own ("cannot
 * drop inherited constraint") — but goes with its parent's. So each such child entry is placed
 * before its parent's (created first, dropped after, when it is already gone: `IF EXISTS`).
 * pg_dump puts them after their parents, so every clean restore of a database with partitioned
 * tables that have a primary key or indexes failed midway.
 */
export function cleanableOrder(ids: readonly number[], toc: readonly ArchiveTocEntry[]): number[] {
  const byId = new Map(toc.map((e) => [e.dumpId, e]));
  const pairs: { parent: number; child: number }[] = [];
  for (const attach of toc) {
    if (attach.desc !== 'INDEX ATTACH' || attach.tag === null) continue;
    const name = attach.tag;
    // It depends on both indexes (or the constraints they back), and on their tables.
    const indexes = [...new Set(attach.dependencies)]
      .map((id) => byId.get(id))
      .filter((e): e is ArchiveTocEntry => e?.desc === 'CONSTRAINT' || e?.desc === 'INDEX');
    const isChild = (e: ArchiveTocEntry) =>
      e.namespace === attach.namespace && (e.tag === name || (e.tag ?? '').endsWith(` ${name}`));
    const children = indexes.filter(isChild);
    if (children.length !== 1) continue;
    for (const parent of indexes) {
      if (parent !== children[0]) pairs.push({ parent: parent.dumpId, child: children[0].dumpId });
    }
  }
  const order = [...ids];
  // Each move puts a child before its parent; deeper levels settle within as many passes.
  for (let pass = 0, moved = true; moved && pass <= pairs.length; pass++) {
    moved = false;
    for (const { parent, child } of pairs) {
      const p = order.indexOf(parent);
      const c = order.indexOf(child);
      if (p < 0 || c < 0 || c < p) continue;
      order.splice(c, 1);
      order.splice(p, 0, child);
      moved = true;
    }
  }
  return order;
}
