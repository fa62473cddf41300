import {
  chooseDumpStrategy,
  type DumpJobTable,
  dumpJobsWithin,
  MIN_TABLE_BYTES_OF_ITS_OWN_JOB,
  planDumpJobs,
} from '../../../core/strategy';

const MiB = 1024 * 1024;
const table = (name: string, mib: number): DumpJobTable => ({ schema: 'public', name, bytes: mib * MiB });
const names = (groups: DumpJobTable[][]) => groups.map((g) => g.map((t) => t.name));

describe('planDumpJobs', () => {
  it('keeps everything in the main archive with one job', () => {
    expect(planDumpJobs([table('a', 100), table('b', 50)], 1)).toEqual([]);
  });

  it('assigns the largest tables first, each to the job with the fewest bytes; the main archive takes the first', () => {
    const tables = [
      table('small', 10),
      table('big', 400),
      table('mid', 200),
      table('mid2', 190),
      table('tiny', 5),
    ];
    // main: big (400); side 1: mid (200) + tiny (5) = 205; side 2: mid2 (190) + small (10) = 200
    expect(names(planDumpJobs(tables, 3))).toEqual([
      ['mid', 'tiny'],
      ['mid2', 'small'],
    ]);
  });

  it('keeps a table marked kept in the main archive, however large, and counts its bytes there', () => {
    // A non-UTF8 database's table whose name is not ASCII: no side pg_dump's pattern can name it.
    expect(names(planDumpJobs([{ ...table('tá', 100), kept: true }, table('a', 300)], 2))).toEqual([['a']]);
    expect(names(planDumpJobs([{ ...table('tá', 300), kept: true }, table('a', 200)], 2))).toEqual([['a']]);
    expect(names(planDumpJobs([{ ...table('tá', 300), kept: true }], 2))).toEqual([]);
  });

  it('counts the bytes kept in the main archive (small tables, and what it holds besides)', () => {
    const tables = [
      table('a', 100),
      table('b', 100),
      { schema: 'public', name: 'c', bytes: MIN_TABLE_BYTES_OF_ITS_OWN_JOB - 1 },
    ];
    expect(names(planDumpJobs(tables, 2, 150 * MiB))).toEqual([['a', 'b']]);
    // The main archive's small table makes it the busier job: the largest table goes to the side job.
    expect(names(planDumpJobs(tables, 2))).toEqual([['a']]);
  });

  it('leaves out empty jobs and tables too small to move', () => {
    expect(names(planDumpJobs([table('a', 100)], 4))).toEqual([]);
    expect(
      planDumpJobs(
        [
          { schema: 's', name: 'x', bytes: 1000 },
          { schema: 's', name: 'y', bytes: 2000 },
        ],
        2,
      ),
    ).toEqual([]);
    expect(names(planDumpJobs([table('a', 100), table('b', 1)], 8))).toEqual([['b']]);
  });

  it('splits many equal tables evenly over 16 jobs', () => {
    const tables = Array.from({ length: 64 }, (_, i) => table(`t${i}`, 10));
    const groups = planDumpJobs(tables, 16);
    expect(groups).toHaveLength(15);
    for (const g of groups) expect(g).toHaveLength(4);
  });
});

describe("planDumpJobs with a minimum per side job (a plan's minSideJobBytes)", () => {
  const min = 64 * MiB;
  const plan = (tables: DumpJobTable[], jobs: number) => names(planDumpJobs(tables, jobs, 0, min));

  it('keeps a small database in one archive, whatever the cores', () => {
    expect(plan([table('only', 1)], 16)).toEqual([]);
    expect(plan([table('a', 1), table('b', 1), table('c', 30)], 4)).toEqual([]);
    // Without the minimum (a requested --jobs), two tables of 1 MiB make two archives.
    expect(names(planDumpJobs([table('a', 1), table('b', 1)], 2))).toEqual([['b']]);
  });

  it('moves a table only where its job carries the minimum', () => {
    // One large table and a small one: the side job would carry 2 MiB, so none is made.
    expect(plan([table('big', 1024), table('two', 2)], 2)).toEqual([]);
    expect(plan([table('big', 1024), table('side', 64)], 2)).toEqual([['side']]);
    expect(plan([table('big', 1024), table('side', 63)], 2)).toEqual([]);
  });

  it('uses fewer jobs than allowed where more would leave a side job short', () => {
    // 200 MiB in 10 tables of 20 MiB: three jobs would carry 80, 60 and 60 MiB, four 60, 40, 40 and
    // 60: two of 100 MiB each.
    const tables = Array.from({ length: 10 }, (_, i) => table(`t${i}`, 20));
    const groups = planDumpJobs(tables, 4, 0, min);
    expect(groups.map((g) => g.reduce((n, t) => n + t.bytes, 0) / MiB)).toEqual([100]);
    // 240 MiB: three of 80 each.
    const more = Array.from({ length: 12 }, (_, i) => table(`t${i}`, 20));
    expect(planDumpJobs(more, 4, 0, min).map((g) => g.reduce((n, t) => n + t.bytes, 0) / MiB)).toEqual([
      80, 80,
    ]);
  });

  it('uses every job where each carries enough', () => {
    const tables = Array.from({ length: 16 }, (_, i) => table(`t${i}`, 100));
    expect(planDumpJobs(tables, 4, 0, min)).toHaveLength(3);
  });
});

describe('the default jobs', () => {
  const GiB = 1024 * MiB;

  it('are one pg_dump per two cores, at most four, each side one carrying 256 MiB', () => {
    const jobs = (bytes: number, cores: number) => chooseDumpStrategy(bytes, cores).jobs;
    expect([1, 2, 3, 4, 8, 16, 64].map((cores) => jobs(400 * GiB, cores))).toEqual([1, 1, 1, 2, 4, 4, 4]);
    expect(chooseDumpStrategy(10 * GiB, 4)).toMatchObject({ jobs: 2, minSideJobBytes: 256 * MiB });
    expect(chooseDumpStrategy(10 * GiB, 2)).not.toHaveProperty('minSideJobBytes');
  });

  it('are fewer for a database too small to fill them', () => {
    expect(chooseDumpStrategy(300 * MiB, 16).jobs).toBe(1);
    expect(chooseDumpStrategy(300 * MiB, 16)).not.toHaveProperty('minSideJobBytes');
    expect(chooseDumpStrategy(600 * MiB, 16).jobs).toBe(2);
    expect(chooseDumpStrategy(900 * MiB, 16).jobs).toBe(3);
  });

  it('are what --jobs asks for', () => {
    expect(chooseDumpStrategy(10 * GiB, 2, 3)).toMatchObject({ jobs: 3 });
    expect(chooseDumpStrategy(10 * GiB, 2, 3)).not.toHaveProperty('minSideJobBytes');
    // A tiny database's strategy is as it always was.
    expect(chooseDumpStrategy(8 * MiB, 2)).toEqual({
      format: 'custom',
      jobs: 1,
      upload: { partBytes: 5 * MiB, queueSize: 2 },
    });
  });

  it('take at most half the connections the source accepts; a requested --jobs that does not fit is refused', () => {
    expect(dumpJobsWithin(4, 100, false)).toBe(4);
    // 9 free (the preflight's own among those counted): half of 10 is 5, less the two sessions.
    expect(dumpJobsWithin(4, 9, false)).toBe(3);
    expect(dumpJobsWithin(4, 3, false)).toBe(1);
    expect(dumpJobsWithin(1, 0, false)).toBe(1);
    expect(dumpJobsWithin(4, 5, true)).toBe(4);
    expect(() => dumpJobsWithin(4, 4, true)).toThrow(
      /^--jobs 4 needs 6 connections to the source, and it accepts 5 more/,
    );
    expect(dumpJobsWithin(1, 0, true)).toBe(1);
  });
});
