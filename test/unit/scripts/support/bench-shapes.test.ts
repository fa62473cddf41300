/** The benchmark's shapes: their sizes, and the report's table of speed-ups, goals and ceilings. */
import {
  FULL_SHAPE_COUNTS,
  SHAPE_GOALS,
  shapeCounts,
  shapesTable,
  summarizeShape,
} from '../../../../scripts/support/bench-shapes';

test("shapeCounts: the full sizes at 1, a tenth at --quick's 0.1, a few of each at the least", () => {
  expect(shapeCounts(1)).toEqual(FULL_SHAPE_COUNTS);
  expect(shapeCounts(0.1)).toEqual({
    manyTables: 400,
    narrowRows: 1_500_000,
    indexesRows: 200_000,
    partsRows: 300_000,
    partitions: 20,
    largeObjects: 3000,
  });
  expect(shapeCounts(1e-9)).toEqual({
    manyTables: 2,
    narrowRows: 100,
    indexesRows: 100,
    partsRows: 100,
    partitions: 2,
    largeObjects: 2,
  });
  expect(() => shapeCounts(0)).toThrow('not a fraction');
  expect(() => shapeCounts(Number.NaN)).toThrow('not a fraction');
});

test("summarizeShape: the peers' times over pgferry's, the goals met or not, the restore's ceiling", () => {
  // Backup 3× faster (the goal, met), restore 1.2× (not met); 8 CPU s on 2 cores: 4 s at best.
  expect(
    summarizeShape({ shape: 's_narrow', backup: 4, dump: 12, restore: 10, pgRestore: 12, restoreCpu: 8 }, 2),
  ).toEqual({
    shape: 's_narrow',
    backupSpeedUp: 3,
    backupMet: true,
    restoreSpeedUp: 1.2,
    restoreMet: false,
    restoreCeiling: 3,
  });
  expect(summarizeShape({ shape: 's_lobs', backup: 5, dump: 4, restore: 4, pgRestore: 6 }, 2)).toEqual({
    shape: 's_lobs',
    backupSpeedUp: 0.8,
    backupMet: false,
    restoreSpeedUp: 1.5,
    restoreMet: true,
    restoreCeiling: undefined,
  });
  // A case not measured (its run failed, or the group did not run): nothing said of it.
  expect(summarizeShape({ shape: 's_many', backup: 2 }, 2)).toEqual({
    shape: 's_many',
    backupSpeedUp: undefined,
    backupMet: undefined,
    restoreSpeedUp: undefined,
    restoreMet: undefined,
    restoreCeiling: undefined,
  });
  expect(SHAPE_GOALS).toEqual({ backup: 3, restore: 1.5 });
});

test("shapesTable: a row per shape, in the medians' order", () => {
  const lines = shapesTable(
    [
      {
        shape: 's_parts',
        bytes: 516 * 1024 * 1024,
        backup: 3.65,
        dump: 8.68,
        restore: 11.21,
        pgRestore: 8.13,
        restoreCpu: 17,
      },
      { shape: 's_many', backup: 3.74 },
    ],
    2,
  );
  expect(lines).toEqual([
    "| shape | database | pgferry backup, s | pg_dump -Fc, s | backup speed-up (goal ≥ 3×) | met | pgferry restore, s | pg_restore -j1, s | restore speed-up (goal ≥ 1.5×) | met | restore's ceiling on 2 cores |",
    '|---|---|---|---|---|---|---|---|---|---|---|',
    '| `s_parts` | 516 MiB | 3.65 | 8.68 | 2.38× | no | 11.21 | 8.13 | 0.73× | no | 0.96× |',
    '| `s_many` | — | 3.74 | — | — | — | — | — | — | — | — |',
  ]);
});
