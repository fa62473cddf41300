/**
 * How long listing the catalog takes: writes N complete backups (valid manifests and a small
 * dump object each, default 2,000) into a fresh local store and times `listBackups` over it,
 * cold and warm. A benchmark to run by hand (`npm run build && node dist/scripts/bench-catalog.js
 * [count]`), not a test: timings on a shared machine make poor assertions. It also times the web
 * console's first request (its summary) over the same store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { consoleSummary } from '../cli/console/site';
import { listBackups } from '../core/catalog';
import { LocalStore } from '../core/store';
import { writeCatalogStore } from './support/catalog-store';

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 2000);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-bench-catalog-'));
  const store = new LocalStore(dir);
  try {
    await writeCatalogStore(store, count);
    const timings: number[] = [];
    for (let run = 0; run < 5; run++) {
      const t0 = process.hrtime.bigint();
      const listed = await listBackups(store);
      timings.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (listed.length !== count) throw new Error(`listed ${listed.length} of ${count} backups`);
    }
    const sorted = [...timings].sort((a, b) => a - b);
    process.stdout.write(
      `listBackups over ${count} manifests in a local store: first ${timings[0].toFixed(0)} ms, ` +
        `median ${sorted[2].toFixed(0)} ms, best ${sorted[0].toFixed(0)} ms\n`,
    );
    // The web console's first request (its summary): the time, and the size the page receives.
    const t0 = process.hrtime.bigint();
    const summary = JSON.stringify(await consoleSummary(store, new Date()));
    process.stdout.write(
      `the console's summary over ${count} manifests: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms, ` +
        `${(summary.length / 1024).toFixed(1)} KiB\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
