/**
 * What a restore's `--schema` and `--table` names select, and the pg_restore runs that select it.
 *
 * A `--table` name is a table's name alone (`orders`: that name in every schema, or in the
 * `--schema`s given, as pg_restore's `-t`) or qualified by its schema (`sales.orders`: that table
 * alone, as `backup --table` and psql take it). Names are written as psql and pg_dump read them,
 * without their patterns or case folding: a dot outside double quotes separates the schema from
 * the table; double quotes make what they enclose part of a name, dots included (`"a.b"`: the
 * table named a.b; `"My Schema".orders`), a doubled quote inside them being one quote; case is kept
 * as written, quoted or not (pg_restore matches names exactly), and `*` and `?` are characters
 * like any other (pg_restore takes no patterns).
 *
 * pg_restore's `-t` takes a name alone and cannot be qualified (`-n a -n b -t x -t y` selects x and
 * y in both schemas), so a selection is the union of the runs its flags can express
 * ({@link pgRestoreRuns}): the unqualified names with the `--schema`s given, and each schema's
 * qualified names with that schema (`-n sales -t orders`). Each run's part of an archive is listed
 * by pg_restore itself and the union restored with `--use-list` (core/postgres/tools.ts).
 */
import type { NameSelection } from './server-encodings';

/** A `--table` name as read: its table's name, and its schema's when qualified. */
export interface TableName {
  schema?: string;
  name: string;
}

/**
 * `written` (a `--table` name) read as psql reads a name (see the module's comment), or why it is
 * none: a double quote left open, more than one dot outside double quotes, an empty name.
 */
export function readTableName(written: string): TableName | { problem: string } {
  const parts = [''];
  let quoted = false;
  for (let i = 0; i < written.length; i++) {
    const c = written[i];
    if (quoted && c === '"' && written[i + 1] === '"') {
      parts[parts.length - 1] += '"';
      i++;
    } else if (c === '"') {
      quoted = !quoted;
    } else if (c === '.' && !quoted) {
      parts.push('');
    } else {
      parts[parts.length - 1] += c;
    }
  }
  if (quoted) return { problem: 'a double quote is not closed' };
  if (parts.length > 2) {
    return {
      problem:
        'it has more than one dot outside double quotes (a name is a table, or a schema and a table: schema.table); ' +
        `quote a name that has a dot in it: ${writtenTableName({ name: written })}`,
    };
  }
  if (parts.some((p) => p === '')) return { problem: 'a schema or table name in it is empty' };
  return parts.length === 2 ? { schema: parts[0], name: parts[1] } : { name: parts[0] };
}

/** How to write `table` as a `--table` name: each part double-quoted if it has a dot or a quote. */
export function writtenTableName(table: TableName): string {
  const part = (name: string) => (/[."]/.test(name) ? `"${name.replaceAll('"', '""')}"` : name);
  return table.schema === undefined ? part(table.name) : `${part(table.schema)}.${part(table.name)}`;
}

/**
 * Whether `selection` selects the relation (table, view, materialized view, sequence or foreign
 * table) `name` of `schema`, as pg_restore does (exactly, case included): in one of the `--schema`
 * schemas when any are given, and named by one of the `--table` names when any are given (by its
 * name alone, or by its schema and name). A name {@link readTableName} cannot read selects nothing.
 */
export function selectsRelation(selection: NameSelection, schema: string, name: string): boolean {
  if (selection.schemas.length && !selection.schemas.includes(schema)) return false;
  if (!selection.tables.length) return true;
  return selection.tables.some((written) => {
    const table = readTableName(written);
    return 'name' in table && table.name === name && (table.schema === undefined || table.schema === schema);
  });
}

/**
 * The selections (pg_restore's `-n` and `-t` names: exact, not as written) whose union is what
 * `selection` selects: without `--table`, `selection` itself; else one of the unqualified names
 * with the `--schema` schemas, and one for each schema of qualified names, with its names. A
 * qualified name of a schema outside `--schema`'s selects nothing and has no run (the preflight
 * refuses it: core/postgres/archive-toc.ts, `unselectedName`), nor has a name that cannot be read.
 */
export function pgRestoreRuns(selection: NameSelection): NameSelection[] {
  if (!selection.tables.length) return [{ schemas: [...selection.schemas], tables: [] }];
  const unqualified: string[] = [];
  const bySchema = new Map<string, string[]>();
  for (const written of selection.tables) {
    const table = readTableName(written);
    if (!('name' in table)) continue;
    if (table.schema === undefined) unqualified.push(table.name);
    else if (!selection.schemas.length || selection.schemas.includes(table.schema)) {
      bySchema.set(table.schema, [...(bySchema.get(table.schema) ?? []), table.name]);
    }
  }
  return [
    ...(unqualified.length ? [{ schemas: [...selection.schemas], tables: unqualified }] : []),
    ...[...bySchema].map(([schema, tables]) => ({ schemas: [schema], tables })),
  ];
}
