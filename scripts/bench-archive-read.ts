/**
 * The runner's CPU for reading a custom archive's table data (`pg_dump -Fc -Z0`), without a server:
 * the archive file is held in memory and fed to the reader in 1 MiB pieces (as the decompressor
 * hands them over), in one of two ways:
 *
 * - `scan`: `ArchiveScanner` alone, as a backup counts rows;
 * - `load`: with a `CopyStream` listening, as a streamed restore or a migration loads, its pieces
 *   taken from the queues as they are dealt (the sessions never connect) and their batches
 *   recycled, as sent pieces' are.
 *
 * Prints the CPU seconds (user + system) of each pass (the first includes the code's warming up). A benchmark to run by hand, not a test:
 * `npm run build && node dist/scripts/bench-archive-read.js <archive> scan|load [passes]
 * [modules]`, where `modules` is another build's `dist` folder to measure instead of this one's
 * (another branch's, A/B).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type * as Archive from '../core/postgres/archive';
import type * as CopyStreamModule from '../core/postgres/copy-stream';

const PIECE_BYTES = 1024 * 1024;

/** The fields of a CopyStream that hold the pieces it dealt (private: this bench drains them). */
interface Dealt {
  sessions: { queue: { bytes: Buffer; batch?: Buffer }[]; queued: number }[];
  spare: Buffer[];
  queued: number;
}

function pass(archive: Buffer, mode: string, modules: string): { cpu: number; rows: number } {
  const { ArchiveScanner } = require(path.join(modules, 'core/postgres/archive')) as typeof Archive;
  const { CopyStream } = require(path.join(modules, 'core/postgres/copy-stream')) as typeof CopyStreamModule;
  let copy: InstanceType<typeof CopyStream> | undefined;
  const scanner = new ArchiveScanner((toc) => copy?.start(toc, new Promise<void>(() => undefined)));
  if (mode === 'load') {
    copy = new CopyStream({ sessions: 2, connect: () => new Promise(() => undefined) });
    scanner.dataListener = copy;
  }
  const dealt = copy as unknown as Dealt | undefined;
  const before = process.cpuUsage();
  for (let at = 0; at < archive.length; at += PIECE_BYTES) {
    scanner.write(archive.subarray(at, at + PIECE_BYTES));
    if (!dealt) continue;
    for (const session of dealt.sessions) {
      for (const piece of session.queue)
        if (piece.batch && dealt.spare.length < 8) dealt.spare.push(piece.batch);
      session.queue.length = 0;
      session.queued = 0;
    }
    dealt.queued = 0;
  }
  const used = process.cpuUsage(before);
  return { cpu: (used.user + used.system) / 1e6, rows: scanner.tables().reduce((sum, t) => sum + t.rows, 0) };
}

function main(): void {
  const [file, mode = 'scan', passes = '3', modules = path.join(__dirname, '..')] = process.argv.slice(2);
  if (!file || (mode !== 'scan' && mode !== 'load')) {
    throw new Error('usage: bench-archive-read.js <archive> scan|load [passes] [modules]');
  }
  const archive = readFileSync(file);
  // Its memory touched once: otherwise the first pass pays ~0.5 s of page faults on 400 MB.
  let sum = 0;
  for (let at = 0; at < archive.length; at += 4096) sum += archive[at];
  if (sum < 0) throw new Error('unreachable');
  for (let i = 0; i < Number(passes); i++) {
    const { cpu, rows } = pass(archive, mode, path.resolve(modules));
    process.stdout.write(`${mode}\t${cpu.toFixed(3)}\t${rows}\n`);
  }
}

main();
