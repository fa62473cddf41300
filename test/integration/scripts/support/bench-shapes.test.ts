/**
 * The benchmark's five shapes (scripts/support/bench-shapes.ts), each made at a tiny scale on a
 * real PostgreSQL 15: what each database holds — its tables and their rows, partitions, keys and
 * indexes, large objects — is what the counts say, vacuumed and analyzed.
 */
import type { Client } from 'pg';
import {
  fillShapeDatabase,
  INDEXES_SECONDARY,
  lobBytes,
  manyRows,
  type Shape,
  type ShapeCounts,
} from '../../../../scripts/support/bench-shapes';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);

/** Tiny, but s_many over one transaction's worth of tables (250), s_lobs over a cycle of its sizes (102). */
const COUNTS: ShapeCounts = {
  manyTables: 260,
  narrowRows: 3000,
  indexesRows: 1500,
  partsRows: 2003,
  partitions: 7,
  largeObjects: 150,
};

/** Makes `shape` at `COUNTS` in a database of its own, runs `check` on it, drops it. */
async function withShape(shape: Shape, check: (c: Client) => Promise<void>): Promise<void> {
  const database = uniqueName(shape);
  await createDatabase(pg, database);
  try {
    await withClient(pg, database, async (c) => {
      await fillShapeDatabase(c, shape, COUNTS);
      await check(c);
    });
  } finally {
    await dropDatabase(pg, database);
  }
}

async function one<T>(c: Client, text: string): Promise<T> {
  return (await c.query(text)).rows[0] as T;
}

/** The user tables' names and rows, the indexes (name → definition) of the public schema. */
async function catalog(c: Client): Promise<{ tables: Map<string, number>; indexes: Map<string, string> }> {
  const tables = new Map<string, number>();
  const { rows } = await c.query<{ t: string }>(
    "SELECT relname AS t FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace",
  );
  for (const { t } of rows) {
    tables.set(t, Number((await one<{ n: string }>(c, `SELECT count(*) AS n FROM "${t}"`)).n));
  }
  const indexes = await c.query<{ name: string; def: string }>(
    "SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = 'public'",
  );
  return { tables, indexes: new Map(indexes.rows.map((r) => [r.name, r.def])) };
}

/** Tables (not partitioned ones) never vacuumed or never analyzed (the generation does both). */
async function notVacuumed(c: Client): Promise<string[]> {
  const { rows } = await c.query<{ t: string }>(
    `SELECT s.relname AS t FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
     WHERE c.relkind = 'r' AND (s.last_vacuum IS NULL OR s.last_analyze IS NULL) ORDER BY 1`,
  );
  return rows.map((r) => r.t);
}

test('s_many: its tables of 50–200 rows, each with its primary key and an index on k', async () => {
  await withShape('s_many', async (c) => {
    const { tables, indexes } = await catalog(c);
    const expected = new Map(
      Array.from({ length: COUNTS.manyTables }, (_, i) => [`t${i + 1}`, manyRows(i + 1)] as const),
    );
    expect(tables).toEqual(expected);
    for (const n of expected.values()) {
      expect(n).toBeGreaterThanOrEqual(50);
      expect(n).toBeLessThanOrEqual(200);
    }
    expect(indexes.size).toBe(2 * COUNTS.manyTables);
    expect(indexes.get('t260_pkey')).toMatch(/UNIQUE INDEX t260_pkey ON public\.t260 USING btree \(id\)/);
    expect(indexes.get('t260_k')).toMatch(/INDEX t260_k ON public\.t260 USING btree \(k\)/);
    const row = await one<{ v: string }>(c, 'SELECT v FROM t251 WHERE id = 1');
    expect(row.v).toMatch(/^[0-9a-f]{32}$/);
    expect(await notVacuumed(c)).toEqual([]);
  });
});

test('s_narrow: one table of (int, int, 6 characters) and its primary key', async () => {
  await withShape('s_narrow', async (c) => {
    const { tables, indexes } = await catalog(c);
    expect(tables).toEqual(new Map([['narrow', COUNTS.narrowRows]]));
    expect([...indexes.values()]).toEqual([expect.stringMatching(/UNIQUE INDEX narrow_pkey .*\(id\)$/)]);
    const lengths = await one<{ min: number; max: number; ids: string }>(
      c,
      'SELECT min(length(s)) AS min, max(length(s)) AS max, count(DISTINCT id) AS ids FROM narrow',
    );
    expect(lengths).toEqual({ min: 6, max: 6, ids: String(COUNTS.narrowRows) });
    expect(await notVacuumed(c)).toEqual([]);
  });
});

test('s_indexes: one table of 8 columns, its primary key and 7 secondary indexes, one on two columns', async () => {
  await withShape('s_indexes', async (c) => {
    const { tables, indexes } = await catalog(c);
    expect(tables).toEqual(new Map([['indexed', COUNTS.indexesRows]]));
    const { rows: columns } = await c.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
       WHERE attrelid = 'indexed'::regclass AND attnum > 0 ORDER BY attnum`,
    );
    expect(columns.map((col) => col.type)).toEqual([
      'bigint',
      'integer',
      'integer',
      'integer',
      'text',
      'timestamp with time zone',
      'numeric(12,2)',
      'text',
    ]);
    expect(indexes.size).toBe(8);
    expect(indexes.get('indexed_pkey')).toMatch(/UNIQUE INDEX .*\(id\)$/);
    expect(INDEXES_SECONDARY).toHaveLength(7);
    const twoColumns = [...indexes.values()].filter((def) => /\(\w+, \w+\)$/.test(def));
    expect(twoColumns).toEqual([expect.stringMatching(/indexed_label_at .*\(label, at\)$/)]);
    expect(await notVacuumed(c)).toEqual([]);
  });
});

test('s_parts: a table partitioned by list, every partition holding rows, its primary key and one partitioned index', async () => {
  await withShape('s_parts', async (c) => {
    const { tables, indexes } = await catalog(c);
    expect(tables.get('parts')).toBe(COUNTS.partsRows);
    const partitions = [...tables].filter(([t]) => t !== 'parts');
    expect(partitions).toHaveLength(COUNTS.partitions);
    expect(partitions.reduce((sum, [, n]) => sum + n, 0)).toBe(COUNTS.partsRows);
    for (const [, n] of partitions) expect(n).toBeGreaterThan(0);
    const tree = await one<{ kind: string; strategy: string; children: string }>(
      c,
      `SELECT c.relkind AS kind, p.partstrat AS strategy,
              (SELECT count(*) FROM pg_inherits WHERE inhparent = c.oid) AS children
       FROM pg_class c JOIN pg_partitioned_table p ON p.partrelid = c.oid WHERE c.relname = 'parts'`,
    );
    expect(tree).toEqual({ kind: 'p', strategy: 'l', children: String(COUNTS.partitions) });
    const parentIndexes = [...indexes].filter(([, def]) => / ON ONLY public\.parts /.test(def));
    expect(parentIndexes.map(([name]) => name).sort()).toEqual(['parts_n', 'parts_pkey']);
    // Each partition has the key's and the index's partitions.
    expect(indexes.size).toBe(2 * (COUNTS.partitions + 1));
    const text = await one<{ min: number; max: number }>(
      c,
      'SELECT min(length(s)) AS min, max(length(s)) AS max FROM parts',
    );
    expect(text).toEqual({ min: 64, max: 64 });
    expect(await notVacuumed(c)).toEqual([]);
  });
});

test('s_lobs: large objects of 0.6–3.8 KiB, each referenced by a row', async () => {
  await withShape('s_lobs', async (c) => {
    const { tables } = await catalog(c);
    expect(tables).toEqual(new Map([['docs', COUNTS.largeObjects]]));
    const objects = await one<{ n: string; referenced: string }>(
      c,
      `SELECT (SELECT count(*) FROM pg_largeobject_metadata) AS n,
              (SELECT count(DISTINCT lo) FROM docs JOIN pg_largeobject_metadata m ON m.oid = docs.lo) AS referenced`,
    );
    expect(objects).toEqual({ n: String(COUNTS.largeObjects), referenced: String(COUNTS.largeObjects) });
    const { rows } = await c.query<{ id: number; bytes: number }>(
      'SELECT id, length(lo_get(lo)) AS bytes FROM docs ORDER BY id',
    );
    expect(rows.map((r) => r.bytes)).toEqual(rows.map((r) => lobBytes(r.id)));
    for (const r of rows) {
      expect(r.bytes).toBeGreaterThanOrEqual(0.6 * 1024);
      expect(r.bytes).toBeLessThanOrEqual(3.8 * 1024);
    }
    expect(await notVacuumed(c)).toEqual([]);
  });
});
