/**
 * The benchmark's "shapes" (issue 20: restore faster than `pg_restore -j1` "on any shape of data"):
 * five databases, each shaped as one thing a production database has that the default and "wide"
 * datasets (bench-database.ts) do not:
 *
 *   s_many     4,000 tables `(id int PRIMARY KEY, k int, v text)` of 50–200 rows (md5 text), an
 *              index on `k` each: per-table costs
 *   s_narrow   one table `narrow (id int, a int, s text)` of 15,000,000 rows (`s` 6 characters)
 *              and its primary key: per-row costs, one key too large for parallel jobs to split
 *   s_indexes  one table of 8 columns (bigint, ints, md5 text, timestamptz, numeric), 2,000,000
 *              rows, its primary key and 7 secondary indexes (one on two columns): index builds
 *   s_parts    a table partitioned by list into 200 partitions, 3,000,000 rows of 64-character
 *              text and numeric, a primary key and one partitioned index: a partition tree
 *   s_lobs     30,000 large objects of 0.6–3.8 KiB (repeated md5) and a table `docs (id, lo oid)`
 *              referencing them: large objects, which are not COPY data
 *
 * The SQL is the eleventh session's (docs/benchmark.md, "Other shapes"), made again: every value
 * derives from the row number (generate_series, md5), so two databases of the same counts hold the
 * same rows. Each table is filled by one statement and its keys and indexes are built after; the
 * database is then vacuumed, analyzed and checkpointed, so that no measured case pays for hint
 * bits or dirty pages of the generation.
 */
import type { Client } from 'pg';

export const SHAPES = ['s_many', 's_narrow', 's_indexes', 's_parts', 's_lobs'] as const;
export type Shape = (typeof SHAPES)[number];
/** The shapes by their size at the full counts (962, 629, 516, 393 and 46 MiB on PostgreSQL 15). */
export const SHAPES_LARGEST_FIRST: readonly Shape[] = [
  's_narrow',
  's_indexes',
  's_parts',
  's_many',
  's_lobs',
];

/** What each shape is made of; `FULL_SHAPE_COUNTS` are the sizes docs/benchmark.md measured. */
export interface ShapeCounts {
  /** s_many's tables (50–200 rows each). */
  manyTables: number;
  narrowRows: number;
  indexesRows: number;
  partsRows: number;
  /** s_parts' partitions (the rows spread evenly, in runs of consecutive ids). */
  partitions: number;
  largeObjects: number;
}

export const FULL_SHAPE_COUNTS: ShapeCounts = {
  manyTables: 4000,
  narrowRows: 15_000_000,
  indexesRows: 2_000_000,
  partsRows: 3_000_000,
  partitions: 200,
  largeObjects: 30_000,
};

/** The full counts times `fraction` (`--quick`: 0.1), never below a few of each. */
export function shapeCounts(fraction: number): ShapeCounts {
  if (!(fraction > 0)) throw new Error(`not a fraction of the shapes' sizes: ${fraction}`);
  const n = (full: number, least: number) => Math.max(least, Math.round(full * fraction));
  return {
    manyTables: n(FULL_SHAPE_COUNTS.manyTables, 2),
    narrowRows: n(FULL_SHAPE_COUNTS.narrowRows, 100),
    indexesRows: n(FULL_SHAPE_COUNTS.indexesRows, 100),
    partsRows: n(FULL_SHAPE_COUNTS.partsRows, 100),
    partitions: n(FULL_SHAPE_COUNTS.partitions, 2),
    largeObjects: n(FULL_SHAPE_COUNTS.largeObjects, 2),
  };
}

/** What `shape` holds at `counts`, in a few words (the bench's report). */
export function describeShape(shape: Shape, counts: ShapeCounts): string {
  const n = (v: number) => v.toLocaleString('en');
  switch (shape) {
    case 's_many':
      return `${n(counts.manyTables)} tables of 50–200 rows, a primary key and an index each`;
    case 's_narrow':
      return `${n(counts.narrowRows)} rows of (int, int, 6 characters), a primary key`;
    case 's_indexes':
      return `${n(counts.indexesRows)} rows of 8 columns, a primary key and 7 indexes`;
    case 's_parts':
      return `${n(counts.partsRows)} rows in ${n(counts.partitions)} partitions, a primary key and an index`;
    case 's_lobs':
      return `${n(counts.largeObjects)} large objects of 0.6–3.8 KiB and a table referencing them`;
  }
}

/** s_many's rows in table `t<t>`: 50–200. */
export function manyRows(t: number): number {
  return 50 + ((t * 37) % 151);
}

/**
 * Tables created and filled per transaction in s_many: each holds ~5 locks (the table, its TOAST
 * table and index, its two indexes) until its transaction ends, and the server's lock table has
 * room for `max_locks_per_transaction` (64) × `max_connections` (100) by default.
 */
const MANY_TABLES_PER_STATEMENT = 250;

function manySql(from: number, to: number): string {
  // format()'s %% is a literal %; the table's number is %1$s.
  return `
DO $$
BEGIN
  FOR t IN ${from}..${to} LOOP
    EXECUTE format('CREATE TABLE t%1$s (id int PRIMARY KEY, k int, v text)', t);
    EXECUTE format('INSERT INTO t%1$s SELECT i, (i * 7919 + %1$s) %% 1000, md5((%1$s::bigint * 1000 + i)::text)
                    FROM generate_series(1, %2$s) i', t, 50 + (t * 37) % 151);
    EXECUTE format('CREATE INDEX t%1$s_k ON t%1$s (k)', t);
  END LOOP;
END $$;`;
}

function narrowSql(rows: number): string[] {
  return [
    'CREATE TABLE narrow (id int, a int, s text)',
    `INSERT INTO narrow SELECT i, ((i::bigint * 7919) % 1000003)::int, substr(md5(i::text), 1, 6)
     FROM generate_series(1, ${rows}) i`,
    'ALTER TABLE narrow ADD PRIMARY KEY (id)',
  ];
}

/** s_indexes' secondary indexes: seven, one on two columns. */
export const INDEXES_SECONDARY = [
  'CREATE INDEX indexed_a ON indexed (a)',
  'CREATE INDEX indexed_b ON indexed (b)',
  'CREATE INDEX indexed_c ON indexed (c)',
  'CREATE INDEX indexed_h ON indexed (h)',
  'CREATE INDEX indexed_at ON indexed (at)',
  'CREATE INDEX indexed_amount ON indexed (amount)',
  'CREATE INDEX indexed_label_at ON indexed (label, at)',
] as const;

function indexesSql(rows: number): string[] {
  return [
    `CREATE TABLE indexed (
       id bigint, a int NOT NULL, b int NOT NULL, c int NOT NULL, h text NOT NULL,
       at timestamptz NOT NULL, amount numeric(12,2), label text NOT NULL)`,
    `INSERT INTO indexed
     SELECT i, ((i * 7919) % 1000003)::int, ((i * 104729) % 50021)::int, (i % 1000)::int, md5(i::text),
            timestamptz '2024-01-01' + i * interval '7 seconds',
            CASE WHEN i % 10 = 0 THEN NULL ELSE ((i * 15485863) % 10000000) / 100.0 END,
            'label-' || (i * 31) % 997
     FROM generate_series(1::bigint, ${rows}) i`,
    'ALTER TABLE indexed ADD PRIMARY KEY (id)',
    ...INDEXES_SECONDARY,
  ];
}

function partsSql(rows: number, partitions: number): string[] {
  return [
    `CREATE TABLE parts (id int NOT NULL, part int NOT NULL, s text NOT NULL, n numeric NOT NULL)
     PARTITION BY LIST (part)`,
    `DO $$
     BEGIN
       FOR p IN 0..${partitions - 1} LOOP
         EXECUTE format('CREATE TABLE parts_%1$s PARTITION OF parts FOR VALUES IN (%1$s)', p);
       END LOOP;
     END $$`,
    // 64 characters of text: two md5s.
    `INSERT INTO parts
     SELECT i, ((i - 1) * ${partitions} / ${rows})::int, md5(i::text) || md5((i * 3)::text),
            ((i * 7919) % 100000000) / 100.0
     FROM generate_series(1::bigint, ${rows}) i`,
    'ALTER TABLE parts ADD PRIMARY KEY (part, id)',
    'CREATE INDEX parts_n ON parts (n)',
  ];
}

/** A large object's bytes in s_lobs: 20–121 copies of a 32-character md5, 640–3,872 bytes. */
export function lobBytes(i: number): number {
  return 32 * (20 + (i % 102));
}

function lobsSql(objects: number): string[] {
  return [
    'CREATE TABLE docs (id int PRIMARY KEY, lo oid NOT NULL)',
    `INSERT INTO docs
     SELECT i, lo_from_bytea(0, convert_to(repeat(md5(i::text), 20 + i % 102), 'UTF8'))
     FROM generate_series(1, ${objects}) i`,
  ];
}

/** The statements that make `shape` in an empty database, in order. */
export function shapeSql(shape: Shape, counts: ShapeCounts): string[] {
  switch (shape) {
    case 's_many': {
      const out: string[] = [];
      for (let from = 1; from <= counts.manyTables; from += MANY_TABLES_PER_STATEMENT) {
        out.push(manySql(from, Math.min(counts.manyTables, from + MANY_TABLES_PER_STATEMENT - 1)));
      }
      return out;
    }
    case 's_narrow':
      return narrowSql(counts.narrowRows);
    case 's_indexes':
      return indexesSql(counts.indexesRows);
    case 's_parts':
      return partsSql(counts.partsRows, counts.partitions);
    case 's_lobs':
      return lobsSql(counts.largeObjects);
  }
}

/**
 * Makes `shape` in the (empty) database behind `client`, then `VACUUM ANALYZE` and `CHECKPOINT`
 * (the role must be a superuser or hold `pg_checkpoint`).
 */
export async function fillShapeDatabase(client: Client, shape: Shape, counts: ShapeCounts): Promise<void> {
  for (const statement of shapeSql(shape, counts)) await client.query(statement);
  // Each on its own: VACUUM cannot run inside the implicit transaction of a multi-statement query.
  await client.query('VACUUM ANALYZE');
  await client.query('CHECKPOINT');
}

// --- the report -----------------------------------------------------------------------------------

/** The goals the shapes are measured against: issue 20's, stated for the benchmark's own shapes. */
export const SHAPE_GOALS = {
  /** pgferry backup → folder this many times faster than `pg_dump -Fc > file`. */
  backup: 3,
  /** pgferry restore this many times faster than `createdb` + `pg_restore -j1`. */
  restore: 1.5,
} as const;

/** One shape's medians over the runs, in seconds. */
export interface ShapeMedians {
  shape: Shape;
  /** `pg_database_size` of the generated database. */
  bytes?: number;
  backup?: number;
  dump?: number;
  restore?: number;
  pgRestore?: number;
  /** pgferry restore's CPU seconds: its processes' and the server's meanwhile. */
  restoreCpu?: number;
}

export interface ShapeSummary {
  shape: Shape;
  /** `pg_dump -Fc`'s time over pgferry backup's. */
  backupSpeedUp?: number;
  backupMet?: boolean;
  /** `pg_restore -j1`'s time over pgferry restore's. */
  restoreSpeedUp?: number;
  restoreMet?: boolean;
  /**
   * The restore's speed-up were pgferry's CPU seconds spread over `cores` cores from its first
   * second to its last (as the bench's "What n cores allow"): a goal past it needs less CPU spent.
   */
  restoreCeiling?: number;
}

export function summarizeShape(m: ShapeMedians, cores: number): ShapeSummary {
  const ratio = (a?: number, b?: number) => (a === undefined || b === undefined ? undefined : a / b);
  const backupSpeedUp = ratio(m.dump, m.backup);
  const restoreSpeedUp = ratio(m.pgRestore, m.restore);
  return {
    shape: m.shape,
    backupSpeedUp,
    backupMet: backupSpeedUp === undefined ? undefined : backupSpeedUp >= SHAPE_GOALS.backup,
    restoreSpeedUp,
    restoreMet: restoreSpeedUp === undefined ? undefined : restoreSpeedUp >= SHAPE_GOALS.restore,
    restoreCeiling: m.restoreCpu ? ratio(m.pgRestore, m.restoreCpu / cores) : undefined,
  };
}

/** The shapes' table of the bench's Markdown report: medians, speed-ups, goals met, ceilings. */
export function shapesTable(medians: ShapeMedians[], cores: number): string[] {
  const s = (v?: number) => (v === undefined ? '—' : v.toFixed(2));
  const x = (v?: number) => (v === undefined ? '—' : `${v.toFixed(2)}×`);
  const met = (v?: boolean) => (v === undefined ? '—' : v ? 'yes' : 'no');
  const mib = (b?: number) => (b === undefined ? '—' : `${(b / 1024 / 1024).toFixed(0)} MiB`);
  return [
    `| shape | database | pgferry backup, s | pg_dump -Fc, s | backup speed-up (goal ≥ ${SHAPE_GOALS.backup}×) | met | ` +
      `pgferry restore, s | pg_restore -j1, s | restore speed-up (goal ≥ ${SHAPE_GOALS.restore}×) | met | ` +
      `restore's ceiling on ${cores} cores |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...medians.map((m) => {
      const r = summarizeShape(m, cores);
      return (
        `| \`${m.shape}\` | ${mib(m.bytes)} | ${s(m.backup)} | ${s(m.dump)} | ${x(r.backupSpeedUp)} | ${met(r.backupMet)} | ` +
        `${s(m.restore)} | ${s(m.pgRestore)} | ${x(r.restoreSpeedUp)} | ${met(r.restoreMet)} | ${x(r.restoreCeiling)} |`
      );
    }),
  ];
}
