/**
 * What a large object costs the runner's memory (issue 20): a restore of a backup of many small
 * large objects (from files: pg_restore, the runner creating the objects in batches,
 * core/postgres/large-objects.ts) must not hold kilobytes of the runner's heap per object. The
 * runner's peak RSS (VmHWM of the pg-tools process, sampled as the bench samples it:
 * scripts/support/measure.ts) is measured for 5,000 and for 40,000 objects; what 35,000 more
 * objects add must stay under 1.4 KiB each (48 MiB), each size restored twice and its lower
 * peak taken. It was ~2.5 KiB each (87 MiB on the development VM: the archive's TOC read and
 * held three times, a heap result per `lo_create`, the `--list` lines kept whole), then 1.6–1.8
 * (the scan of the whole archive for its tables' sizes read it into a new 1 MiB buffer per read,
 * and up to 36 MiB of dead ones were resident at once: core/file-chunks.ts); now 0.95 (33 MiB).
 * A memory bound, not a time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runCli, runnerPeakMiB, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';

const env = testEnv();
const pg = env.server(15);
const SMALL = 5_000;
const LARGE = 40_000;
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-lo-memory-'));
const sources: Record<number, string> = {
  [SMALL]: uniqueName('lo_mem_small'),
  [LARGE]: uniqueName('lo_mem_large'),
};
/** The databases restored, dropped at the end. */
const restored: string[] = [];

/** `count` large objects of 0.6–3.8 KiB, referenced by `docs` (as the lead measured them). */
function seed(count: number): string {
  return `CREATE TABLE docs (id int PRIMARY KEY, lo oid);
    INSERT INTO docs SELECT i, lo_from_bytea(0, convert_to(repeat(md5(i::text), 20 + i % 102), 'UTF8'))
      FROM generate_series(1, ${count}) i;`;
}

beforeAll(async () => {
  for (const count of [SMALL, LARGE]) {
    await createSeededDatabase(pg, sources[count], seed(count));
    const backup = await runCli(['backup', '--source', sourceUrl(pg, sources[count]), '--store', dir]);
    if (backup.code !== 0) throw new Error(`backup failed: ${backup.stderr}`);
  }
}, 180_000);

afterAll(async () => {
  for (const count of [SMALL, LARGE]) {
    await dropDatabase(pg, sources[count]);
  }
  for (const name of restored) await dropDatabase(pg, name);
  rmSync(dir, { recursive: true, force: true });
});

/** The runner's peak RSS, in MiB, restoring the backup of `count` objects. */
async function restorePeak(count: number): Promise<number> {
  const target = uniqueName(`lo_mem_${count}_r`);
  restored.push(target);
  return runnerPeakMiB([
    'restore',
    '--store',
    dir,
    '--name',
    sources[count],
    '--backup',
    'latest',
    '--target',
    sourceUrl(pg, target),
  ]);
}

test('a restore of 35,000 more large objects adds under 1.4 KiB of runner RSS each', async () => {
  // Each twice, the lower peak kept: when V8 collects its heap varies with the machine's load.
  const runs: number[] = [];
  for (let i = 0; i < 2; i++) runs.push(await restorePeak(SMALL), await restorePeak(LARGE));
  const small = Math.min(runs[0], runs[2]);
  const large = Math.min(runs[1], runs[3]);
  const perObject = ((large - small) * 1024) / (LARGE - SMALL);
  const seen = `runs ${runs.map((r) => r.toFixed(0)).join(', ')} MiB; ${small.toFixed(0)} MiB at ${SMALL}, ${large.toFixed(0)} MiB at ${LARGE}: ${perObject.toFixed(2)} KiB per object`;
  if (!(perObject < 1.4)) throw new Error(`the runner's peak RSS grew too much: ${seen}`);
  expect(perObject).toBeLessThan(1.4);
}, 180_000);
