/** The tools' pure parts: the parallel restore's passes and list split, a tool's first error. */
import type { ArchiveTocEntry } from '../../../../core/postgres/archive';
import {
  firstError,
  oversizedRowFailure,
  POST_DATA_PARALLEL_MIN_BYTES,
  planRestorePasses,
  postDataJobs,
  postDataNowAndLater,
  SPLIT_MIN_BYTES,
  sessionSettings,
  splitFirstPass,
  splitRestoreList,
  tablesToSplit,
  waitingForTables,
  wholeRestoreJobs,
} from '../../../../core/postgres/tools';

/** A `pg_restore --list` of a small archive, as pg_restore 15 prints it (comments already dropped). */
const LIST = [
  '215; 1259 16386 TABLE public accounts app',
  '216; 1259 16391 MATERIALIZED VIEW public totals app',
  '3345; 0 16386 TABLE DATA public accounts app',
  '3190; 2606 16390 CONSTRAINT public accounts accounts_pkey app',
  '3346; 0 0 ACL - SCHEMA public pg_database_owner',
  '3347; 0 16386 ACL public TABLE accounts app',
  '3348; 826 16395 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES app',
  '3349; 0 16391 MATERIALIZED VIEW DATA public totals app',
  '3350; 3466 16396 EVENT TRIGGER - audit_ddl app',
  '3351; 0 0 COMMENT - EVENT TRIGGER audit_ddl app',
  '3352; 0 0 COMMENT - TABLE accounts app',
];

test('the second pass holds the privileges and what needs them, in the archive order', () => {
  const { first, last } = splitRestoreList(LIST);
  expect(last.map((l) => l.split(';')[0])).toEqual(['3346', '3347', '3348', '3349', '3350', '3351']);
  expect(first.map((l) => l.split(';')[0])).toEqual(['215', '216', '3345', '3190', '3352']);
});

test('every entry is in exactly one pass', () => {
  const { first, last } = splitRestoreList(LIST);
  expect([...first, ...last].sort()).toEqual([...LIST].sort());
  expect(splitRestoreList([])).toEqual({ first: [], last: [] });
});

test('a table whose name looks like a privilege stays in the first pass', () => {
  const entry = '217; 1259 16400 TABLE public "ACL public" app';
  expect(splitRestoreList([entry])).toEqual({ first: [entry], last: [] });
});

/** A partitioned table's post-data, as pg_restore 17 lists it, with a foreign key referencing it. */
const PARTITIONED = [
  '220; 1259 16400 TABLE public m app',
  '221; 1259 16405 TABLE public m_1 app',
  '222; 1259 16410 TABLE public notes app',
  '3400; 0 16405 TABLE DATA public m_1 app',
  '3401; 2606 16420 CONSTRAINT public m m_pkey app',
  '3402; 2606 16422 CONSTRAINT public m_1 m_1_pkey app',
  '3403; 1259 16424 INDEX public m_v_idx app',
  '3404; 1259 16425 INDEX public m_1_v_idx app',
  '3405; 0 0 INDEX ATTACH public m_1_pkey app',
  '3406; 0 0 INDEX ATTACH public m_1_v_idx app',
  '3407; 2620 16430 TRIGGER public m check app',
  '3408; 2606 16432 FK CONSTRAINT public notes notes_m_fkey app',
  '3409; 0 0 COMMENT - CONSTRAINT notes_m_fkey ON notes app',
  '3410; 0 16400 ACL public TABLE m app',
];

/** The archive's TOC for PARTITIONED: who depends on whom. */
function tocOf(dependencies: Record<number, number[]>): ArchiveTocEntry[] {
  return PARTITIONED.map((line) => {
    const dumpId = Number(line.slice(0, line.indexOf(';')));
    return {
      dumpId,
      hadDumper: false,
      tableoid: 0,
      oid: 0,
      tag: null,
      desc: null,
      namespace: null,
      owner: null,
      dependencies: dependencies[dumpId] ?? [],
      dropped: false,
    };
  });
}

const ids = (lines: string[]) => lines.map((l) => Number(l.split(';')[0]));

test('index attachments run alone, in one job; what needs them after, in parallel; privileges last', () => {
  const toc = tocOf({
    3401: [220],
    3402: [3400],
    3403: [220],
    3404: [3400],
    3405: [3401, 3402],
    3406: [3403, 3404],
    3407: [220],
    3408: [222, 3401, 3405],
    3409: [3408],
    3410: [220],
  });
  expect(
    planRestorePasses(PARTITIONED, toc).map((p) => ({ ids: ids(p.entries), parallel: p.parallel })),
  ).toEqual([
    { ids: [220, 221, 222, 3400, 3401, 3402, 3403, 3404, 3407], parallel: true },
    { ids: [3405, 3406], parallel: false },
    { ids: [3408, 3409], parallel: true },
    { ids: [3410], parallel: false },
  ]);
});

test('without the TOC (no attachments), the two passes of splitRestoreList; empty passes are left out', () => {
  expect(planRestorePasses(LIST).map((p) => ({ ids: ids(p.entries), parallel: p.parallel }))).toEqual([
    { ids: [215, 216, 3345, 3190, 3352], parallel: true },
    { ids: [3346, 3347, 3348, 3349, 3350, 3351], parallel: false },
  ]);
  expect(planRestorePasses([])).toEqual([]);
});

test('firstError names the first error with the line after it', () => {
  const stderr = [
    'pg_restore: connecting to database for restore',
    'pg_restore: error: could not execute query: ERROR:  relation "accounts" already exists',
    'Command was: CREATE TABLE public.accounts (id integer);',
    'pg_restore: error: could not execute query: ERROR:  another one',
  ].join('\n');
  expect(firstError(stderr)).toBe(
    'pg_restore: error: could not execute query: ERROR:  relation "accounts" already exists | Command was: CREATE TABLE public.accounts (id integer);',
  );
});

test('oversizedRowFailure names the table as pg_dump quotes it, even from a cut line, and nothing else', () => {
  const stderr = (command: string) =>
    'pg_dump: error: Dumping the contents of table "Big t" failed: PQgetResult() failed. | ' +
    'pg_dump: detail: Error message from server: ERROR:  invalid memory alloc request size 1074000003 | ' +
    `pg_dump: detail: Command was: ${command}`;
  const remedy = (table: string) => `exclude ${table}`;
  expect(oversizedRowFailure(stderr('COPY "my.schema"."Big t" (id, "a ""b""") TO stdout;'), remedy)).toMatch(
    /^table "my\.schema"\."Big t" has a row .* needs 1,074,000,003 bytes, .*\. exclude "my\.schema"\."Big t"$/,
  );
  expect(oversizedRowFailure(stderr('COPY public.wide (c1, c2, c3, c4, c…'), remedy)).toMatch(
    /^table public\.wide has .* exclude public\.wide$/,
  );
  expect(
    oversizedRowFailure('pg_dump: error: query failed: ERROR:  permission denied for table t', remedy),
  ).toBeUndefined();
  // The same server error outside a COPY (a damaged catalog, say) is not a row's.
  expect(
    oversizedRowFailure(
      'pg_dump: error: ERROR:  invalid memory alloc request size 18446744073709551613',
      remedy,
    ),
  ).toBeUndefined();
});

test('firstError without an error line gives the last two lines, or says there was no output', () => {
  expect(firstError('one\ntwo\n\nthree\n')).toBe('two | three');
  expect(firstError('FATAL:  terminating connection due to administrator command')).toMatch(/^FATAL/);
  expect(firstError('')).toBe('no error output');
});

const MiB = 1024 * 1024;

test('a table is split when it holds more than its share of the data for the jobs, largest first', () => {
  // "wide": one table of three quarters of the data, one of a quarter (more than a fourth).
  const wide = new Map([
    [1, 740 * MiB],
    [2, 260 * MiB],
  ]);
  expect(tablesToSplit(wide, 2)).toEqual([1]);
  expect(tablesToSplit(wide, 4)).toEqual([1, 2]);
  expect(tablesToSplit(wide, 1)).toEqual([]);
  // Four tables of about the same size: pg_restore's jobs already share them out.
  const even = new Map([
    [1, 300 * MiB],
    [2, 280 * MiB],
    [3, 260 * MiB],
    [4, 250 * MiB],
  ]);
  expect(tablesToSplit(even, 2)).toEqual([]);
  expect(tablesToSplit(even, 4)).toEqual([1, 2]);
  // A small database's largest table is not worth the sessions.
  expect(tablesToSplit(new Map([[1, SPLIT_MIN_BYTES - 1]]), 2)).toEqual([]);
  expect(tablesToSplit(new Map([[1, 10]]), 2, 0)).toEqual([1]);
});

test("the first pass is cut where the data section begins and ends, the split tables' data left out", () => {
  const toc = [
    ...tocOf({}).map((e) => (e.dumpId === 3400 ? { ...e, hadDumper: true } : e)),
    { ...tocOf({})[0], dumpId: 3399, hadDumper: true },
  ];
  const first = {
    entries: [
      ...PARTITIONED.slice(0, 3),
      '3399; 0 16410 TABLE DATA public notes app',
      ...PARTITIONED.slice(3, 9),
    ],
    parallel: true,
  };
  const [pre, data, post] = splitFirstPass(first, [3400], toc);
  expect(ids(pre.entries)).toEqual([220, 221, 222]);
  expect(ids(data.entries)).toEqual([3399]);
  expect(ids(post.entries)).toEqual([3401, 3402, 3403, 3404, 3405]);
  expect(pre.parallel && data.parallel && post.parallel).toBe(true);
});

test("a split table's sessions take the load's PGOPTIONS settings", () => {
  expect(
    sessionSettings(
      '-c maintenance_work_mem=512MB -c synchronous_commit=off -c default_toast_compression=lz4',
    ),
  ).toEqual([
    ['maintenance_work_mem', '512MB'],
    ['synchronous_commit', 'off'],
    ['default_toast_compression', 'lz4'],
  ]);
  expect(sessionSettings(undefined)).toEqual([]);
});

test('what waits for a table loaded elsewhere: all that depends on it or its table, directly or not', () => {
  const entry = (dumpId: number, desc: string, dependencies: number[]): ArchiveTocEntry => ({
    ...tocOf({})[0],
    dumpId,
    desc,
    dependencies,
  });
  const toc = [
    entry(1, 'TABLE', []), // events, loaded elsewhere
    entry(2, 'TABLE', []), // accounts
    entry(3, 'VIEW', [1]),
    entry(4, 'MATERIALIZED VIEW', [1]),
    entry(10, 'TABLE DATA', [1]),
    entry(11, 'TABLE DATA', [2]),
    entry(20, 'CONSTRAINT', [1]), // events_pkey
    entry(21, 'INDEX', [1]),
    entry(22, 'CONSTRAINT', [2]), // accounts_pkey
    entry(23, 'FK CONSTRAINT', [2, 20]), // accounts -> events
    entry(24, 'FK CONSTRAINT', [1, 22]), // events -> accounts
    entry(25, 'INDEX', [2]),
    entry(26, 'COMMENT', [21]),
    entry(27, 'TRIGGER', [3]),
    entry(30, 'MATERIALIZED VIEW DATA', [4]),
  ];
  expect([...waitingForTables(toc, [10])].sort((a, b) => a - b)).toEqual([
    3, 4, 10, 20, 21, 23, 24, 26, 27, 30,
  ]);
  expect(waitingForTables(toc, [])).toEqual(new Set());
});

test('beside loads elsewhere: what waits for them and what is restored last wait; the rest runs now', () => {
  // LIST's post-data and last entries in one pass, as with --no-privileges.
  const post = { entries: LIST.slice(3), parallel: true };
  const [now, later] = postDataNowAndLater(post, new Set([3190]));
  expect(ids(now.entries)).toEqual([3352]);
  expect(ids(later.entries)).toEqual([3190, 3346, 3347, 3348, 3349, 3350, 3351]);
  expect(now.parallel && later.parallel).toBe(true);
});

test('the post-data runs in one job where its builds are many and their tables small', () => {
  const entry = (dumpId: number, desc: string): ArchiveTocEntry => ({ ...tocOf({})[0], dumpId, desc });
  // Per table: its definition, its data, its key, an index; then one comment and one privilege.
  const tables = (n: number) =>
    Array.from({ length: n }, (_, i) => [
      entry(4 * i + 1, 'TABLE'),
      entry(4 * i + 2, 'TABLE DATA'),
      entry(4 * i + 3, 'CONSTRAINT'),
      entry(4 * i + 4, 'INDEX'),
    ]).flat();
  const toc = [...tables(4000), entry(20_001, 'COMMENT'), entry(20_002, 'ACL')];
  const builds = 8000;
  // 4,000 tables of ~4 KB: one job; the same builds over 10 GB: every job.
  expect(postDataJobs(4, toc, 4000 * 4096)).toBe(1);
  expect(postDataJobs(4, toc, 10 * 1024 ** 3)).toBe(4);
  // At the limit, every job; just under it, one.
  expect(postDataJobs(2, toc, builds * POST_DATA_PARALLEL_MIN_BYTES)).toBe(2);
  expect(postDataJobs(2, toc, builds * POST_DATA_PARALLEL_MIN_BYTES - 1)).toBe(1);
  // Foreign keys, triggers, attachments, rules, policies and extended statistics are builds too.
  const others = ['FK CONSTRAINT', 'TRIGGER', 'INDEX ATTACH', 'RULE', 'POLICY', 'STATISTICS'].map((d, i) =>
    entry(30_000 + i, d),
  );
  expect(postDataJobs(2, others, 6 * POST_DATA_PARALLEL_MIN_BYTES - 1)).toBe(1);
  // Nothing to build (tables without keys or indexes): the jobs asked.
  expect(postDataJobs(3, [entry(1, 'TABLE'), entry(2, 'TABLE DATA')], 0)).toBe(3);
  expect(postDataJobs(1, toc, 10 * 1024 ** 3)).toBe(1);
});

test('a whole restore from files runs in one job where its builds are many, its tables small and none to split', () => {
  const entry = (dumpId: number, desc: string): ArchiveTocEntry => ({ ...tocOf({})[0], dumpId, desc });
  // 1,000 tables, each with a key and an index: 2,000 builds.
  const toc = Array.from({ length: 1000 }, (_, i) => [
    entry(3 * i + 1, 'TABLE DATA'),
    entry(3 * i + 2, 'CONSTRAINT'),
    entry(3 * i + 3, 'INDEX'),
  ]).flat();
  const small = Array.from({ length: 1000 }, () => 4096);
  expect(wholeRestoreJobs(4, toc, small)).toBe(1);
  // One table large enough to split keeps every job (its load is split over them), even though the
  // builds' mean is small.
  expect(wholeRestoreJobs(4, toc, [...small.slice(1), SPLIT_MIN_BYTES])).toBe(4);
  expect(wholeRestoreJobs(4, toc, [...small.slice(1), SPLIT_MIN_BYTES - 1])).toBe(1);
  // The restore's own split size decides.
  expect(wholeRestoreJobs(4, toc, small, 4096)).toBe(4);
  // Tables large enough per build: every job.
  const large = Array.from({ length: 1000 }, () => 200 * 1024);
  expect(wholeRestoreJobs(2, toc, large)).toBe(2);
});
