/**
 * What a restore learns from an archive's table of contents, known from its first bytes — before
 * the archive is downloaded: what `pg_restore --clean` will drop, and what a `--schema`/`--table`
 * selection selects. pg_dump writing to a pipe (as pgferry's dumps do) puts the whole table of
 * contents at the start, before any data; core/postgres/archive.ts reads it.
 */
import { closeNames } from '../close-names';
import { PgferryError } from '../errors';
import { ArchiveFormatError, ArchiveScanner, type ArchiveTocEntry } from './archive';
import { readTableName, selectsRelation, writtenTableName } from './restore-selection';

function unreadable(detail: string): PgferryError {
  return new PgferryError('BackupCorrupt', `the archive's table of contents cannot be read: ${detail}`);
}

/**
 * Reads the TOC from the start of a custom-format archive, consuming no more of `input` than it
 * needs (a stream is destroyed, a file's chunks closed, once the TOC is read:
 * core/file-chunks.ts). Throws `BackupCorrupt` on bytes that are not such an archive, that end
 * before the TOC does, or of a format version it does not know; an error of `input` itself is
 * passed on as it is.
 */
export async function readArchiveToc(input: AsyncIterable<Buffer>): Promise<ArchiveTocEntry[]> {
  let toc: ArchiveTocEntry[] | undefined;
  const scanner = new ArchiveScanner((entries) => {
    toc = entries;
  });
  for await (const chunk of input) {
    try {
      scanner.write(chunk);
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
 * selects them: with schemas, only entries in one of them; with tables, only relations those
 * names select (core/postgres/restore-selection.ts, `selectsRelation`), and nothing else; of
 * those, the ones with a drop statement (the database's own entry only with `--create`, which
 * pgferry never passes).
 */
export function droppedByClean(
  toc: readonly ArchiveTocEntry[],
  selection: { schemas: readonly string[]; tables: readonly string[] },
): ArchiveTocEntry[] {
  return toc.filter((e) => {
    if (!e.dropped || e.desc === 'DATABASE') return false;
    if (selection.schemas.length && (e.namespace === null || !selection.schemas.includes(e.namespace)))
      return false;
    if (selection.tables.length) return isSelectedRelation(e, selection);
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
    : new Set(toc.filter((e) => isSelectedRelation(e, selection)).map((e) => e.namespace as string));
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

/** An archive's entry as a restore's `--schema`/`--table` selection sees it. */
export type SelectableEntry = Pick<ArchiveTocEntry, 'desc' | 'tag' | 'namespace'>;

/** Whether `e` is a relation (as pg_restore's `-t` sees them) that `selection` selects. */
function isSelectedRelation(
  e: SelectableEntry,
  selection: { schemas: readonly string[]; tables: readonly string[] },
): boolean {
  return (
    TABLE_LIKE.has(e.desc ?? '') &&
    e.namespace !== null &&
    e.tag !== null &&
    selectsRelation(selection, e.namespace, e.tag)
  );
}

/** Schemas every database has, of no interest in a list of a backup's schemas. */
const SYSTEM_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'pg_toast']);

/**
 * A restore's `--schema` or `--table` name that selects nothing of an archive's `entries`, in one
 * line naming it and what to do; undefined when every name selects something. pg_restore's `-n`
 * and `-t` select nothing silently: a typo would give an empty restore that succeeds. Names match
 * as pg_restore matches them (see {@link droppedByClean}): exactly, case included. A `--schema`
 * name matches when the archive has that schema (its SCHEMA entry, which the restore creates: see
 * {@link selectedSchemaEntries}) or an object in it; a `--table` name, a table, view, materialized
 * view, sequence or foreign table of that name (of that schema, when qualified: `schema.table`, read
 * as core/postgres/restore-selection.ts says), in one of the `--schema` schemas when any are
 * given; one that is no name (an open quote, two dots) is refused as such, and a qualified one
 * whose whole is a table's name (`a.b`, of the table named "a.b") is told to quote it. Names are compared as the archive's reader decoded them: exactly, in any encoding whose
 * names server-encodings.ts's `unmatchableSelection` lets through (an entry read loosely may compare
 * equal to a name pg_restore does not match, never unequal to one it does: no false refusal).
 *
 * `backup` names where its tables are listed (`pgferry show … --json`, the manifest's `tables`),
 * offered when no close name is.
 */
export function unselectedName(
  entries: readonly SelectableEntry[],
  selection: { schemas: readonly string[]; tables: readonly string[] },
  backup: { id: string; store: string },
): string | undefined {
  const done = 'nothing was restored';
  const list = (names: readonly string[]) => names.map((n) => JSON.stringify(n)).join(', ');
  const schemas = new Set<string>();
  for (const e of entries) {
    if (e.desc === 'SCHEMA' && e.tag !== null) schemas.add(e.tag);
    if (e.namespace !== null) schemas.add(e.namespace);
  }
  for (const name of selection.schemas) {
    if (schemas.has(name)) continue;
    const own = [...schemas].filter((s) => !SYSTEM_SCHEMAS.has(s));
    const close = closeNames(name, own, 10);
    const rest = own.filter((s) => !close.includes(s)).sort();
    const shown = [...close, ...rest].slice(0, 10);
    return (
      `--schema ${JSON.stringify(name)} matches nothing in backup ${backup.id}: it has no schema of that exact name ` +
      `(as pg_restore's -n, case included); its schemas: ${shown.length ? list(shown) : 'none'}` +
      `${own.length > shown.length ? `, and ${own.length - shown.length} more` : ''}; ${done}`
    );
  }
  const relations = entries.filter(
    (e): e is SelectableEntry & { tag: string; namespace: string } =>
      TABLE_LIKE.has(e.desc ?? '') && e.tag !== null && e.namespace !== null,
  );
  const inSchemas = (e: { namespace: string }) =>
    selection.schemas.length === 0 || selection.schemas.includes(e.namespace);
  const kinds = 'table, view, materialized view, sequence or foreign table';
  const inWhich = (names: readonly string[]) => (names.length ? ` (in ${list(names)})` : '');
  const schemasOf = (of: readonly { namespace: string }[]) => [...new Set(of.map((e) => e.namespace))].sort();
  for (const written of selection.tables) {
    const table = readTableName(written);
    if (!('name' in table)) {
      return `--table ${JSON.stringify(written)} is not a table's name: ${table.problem}; ${done}`;
    }
    const named = relations.filter((e) => e.tag === table.name);
    if (table.schema !== undefined) {
      const { schema } = table;
      if (selection.schemas.length && !selection.schemas.includes(schema)) {
        return (
          `--table ${JSON.stringify(written)} names a table of schema ${JSON.stringify(schema)}, which is none of the --schema schemas ` +
          `(${list(selection.schemas)}); add --schema ${JSON.stringify(schema)}, or leave --schema out; ${done}`
        );
      }
      if (named.some((e) => e.namespace === schema)) continue;
      // A table whose own name has the dot: the dot read as the schema's (as psql and pg_dump read it).
      const dotted = relations.filter((e) => e.tag === written && inSchemas(e));
      if (dotted.length) {
        return (
          `--table ${JSON.stringify(written)} names table ${JSON.stringify(table.name)} of schema ${JSON.stringify(schema)}, ` +
          `which backup ${backup.id} has not: a dot separates a schema from its table; for the table named ${JSON.stringify(written)}` +
          `${inWhich(schemasOf(dotted))}, quote it: --table '${writtenTableName({ name: written })}'; ${done}`
        );
      }
      // Names close to the whole, then the table's name in other schemas.
      const writtenOf = (of: readonly { namespace: string; tag: string }[]) =>
        of.filter(inSchemas).map((e) => writtenTableName({ schema: e.namespace, name: e.tag }));
      const close = [
        ...new Set([...closeNames(written, writtenOf(relations)), ...writtenOf(named).sort()]),
      ].slice(0, 5);
      return (
        `--table ${JSON.stringify(written)} matches nothing in backup ${backup.id}: it has no ${kinds} named ` +
        `${JSON.stringify(table.name)} in schema ${JSON.stringify(schema)} (names match exactly, case included); ` +
        (close.length
          ? `close names: ${list(close)}`
          : `pgferry show --store ${backup.store} --backup ${backup.id} --json lists its tables`) +
        `; ${done}`
      );
    }
    const name = table.name;
    if (named.some(inSchemas)) continue;
    if (named.length) {
      const found = schemasOf(named);
      return (
        `--table ${JSON.stringify(written)} is in none of the --schema schemas (${list(selection.schemas)}) of backup ${backup.id}: ` +
        `it is in ${list(found)}; add --schema ${JSON.stringify(found[0])}, or leave --schema out to restore it from every schema; ${done}`
      );
    }
    const candidates = relations.filter(inSchemas);
    const close = closeNames(
      name,
      candidates.map((e) => e.tag),
    ).map((tag) => `${JSON.stringify(tag)}${inWhich(schemasOf(candidates.filter((e) => e.tag === tag)))}`);
    const where = selection.schemas.length ? ` in --schema ${list(selection.schemas)}` : '';
    return (
      `--table ${JSON.stringify(written)} matches nothing${where} in backup ${backup.id}: it has no ${kinds} ` +
      `of that exact name (as pg_restore's -t: the name alone, case included); ` +
      (close.length
        ? `close names: ${close.join(', ')}`
        : `pgferry show --store ${backup.store} --backup ${backup.id} --json lists its tables`) +
      `; ${done}`
    );
  }
  return undefined;
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
