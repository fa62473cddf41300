import { type DumpJobTable, MIN_TABLE_BYTES_OF_ITS_OWN_JOB, planDumpJobs } from '../../../core/strategy';

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
