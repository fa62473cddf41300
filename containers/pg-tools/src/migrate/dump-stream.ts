/**
 * pg_dump's output streamed into pg_restore, into the archive, or into both at once; a failure of
 * either stops both, and is told as the tool that failed told it. The schema test and the
 * migration's copy run their tools through it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Connection } from '../../../../core/contracts';
import { PgferryError } from '../../../../core/errors';
import { withOutputBuffer } from '../../../../core/postgres/output-buffer';
import { collectTail, firstError, keepStderr, oversizedRowFailure } from '../../../../core/postgres/tools';
import type { SnapshotGuard } from '../backup-archive';
import { type Context, dumpEnv, restoreEnv } from './context';

/**
 * pg_dump's output streamed into pg_restore's standard input (with `restoreArgs`), and — when
 * `archive` is given — the same bytes to it at the same time; without `restoreArgs`, to `archive`
 * alone (the copy path: its loader reads them there). Any failure stops both tools and `stop`s
 * what loads beside them; the error is the tool's own.
 */
export async function streamDumpIntoRestore(
  ctx: Context,
  opts: {
    dumpArgs: string[];
    source: Connection;
    restoreArgs?: string[];
    /**
     * pg_restore starts once `ready` is settled (the pre-data restored), with the arguments it
     * gives after `restoreArgs`' (before the dump's name: standard input): until then its input
     * waits here, every byte up to the TOC's end (`tocRead`, which the archive reads from the same
     * bytes), then at most a few MiB more before pg_dump is held back.
     */
    restoreAfter?: { tocRead: Promise<unknown>; ready: Promise<string[]> };
    target: Connection;
    archive?: (input: Readable) => Promise<void>;
    /** Called with the failure: stops the loader that reads the archive's stream. */
    stop?: (reason: unknown) => void;
    /** Its abort stops both tools; the abort's reason is the error. */
    guard?: SnapshotGuard;
    /** A better error for pg_dump's failure (a lock it could not get), if there is one. */
    diagnose?: (stderr: string) => Promise<PgferryError | undefined>;
  },
): Promise<void> {
  // Its archive written 1 MiB at a time rather than stdio's 4 KiB (core/postgres/output-buffer.ts).
  const [dumpCommand, dumpArgs] = withOutputBuffer(ctx.pgDump.path, opts.dumpArgs);
  const dump = spawn(dumpCommand, dumpArgs, {
    env: dumpEnv(ctx, opts.source),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ctx.deps.onChild?.(dump);
  const dumpStderr = collectTail(dump.stderr);
  const work: Promise<unknown>[] = [exitStatus(dump, 'pg_dump', dumpStderr)];
  let restore: ChildProcess | undefined;
  let restoreStderr = () => '';
  const { restoreArgs, restoreAfter } = opts;
  // A failure stops a pg_restore that waits to start, and drops what its input holds.
  let stopRestore: (err: unknown) => void = () => undefined;
  if (restoreArgs) {
    const toRestore = new PassThrough({ highWaterMark: 1 << 20 });
    dump.stdout.pipe(restoreAfter ? heldUntil(toRestore, restoreAfter.tocRead) : toRestore);
    const stopped = new Promise<never>((_, reject) => {
      stopRestore = (err) => {
        toRestore.destroy();
        reject(err);
      };
    });
    stopped.catch(() => undefined);
    const run = async () => {
      const more = (await Promise.race([restoreAfter?.ready, stopped])) ?? [];
      const child = spawn(ctx.pgRestore.path, [...restoreArgs, ...more], {
        env: restoreEnv(ctx, opts.target),
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      restore = child;
      ctx.deps.onChild?.(child);
      restoreStderr = keepStderr(child.stderr);
      await Promise.all([
        pipeline(toRestore, child.stdin),
        exitStatus(child, 'pg_restore', () => firstError(restoreStderr())),
      ]);
    };
    work.push(run());
  }
  if (opts.archive) {
    const toArchive = new PassThrough({ highWaterMark: 1 << 20 });
    dump.stdout.pipe(toArchive);
    work.push(opts.archive(toArchive));
  }
  try {
    await Promise.all(work);
  } catch (err) {
    opts.stop?.(err);
    stopRestore(err);
    dump.kill('SIGKILL');
    restore?.kill('SIGKILL');
    await Promise.allSettled(work);
    if (opts.guard?.signal.aborted) throw opts.guard.signal.reason;
    const diagnosed = opts.diagnose && dump.exitCode !== 0 ? await opts.diagnose(dumpStderr()) : undefined;
    if (diagnosed) throw diagnosed;
    // pg_restore's own error says most; a broken pipe after it says nothing.
    if (restore && restore.exitCode !== 0 && /error/i.test(restoreStderr())) {
      throw new PgferryError('MigrateFailed', `pg_restore failed: ${firstError(restoreStderr())}`, {
        cause: err,
      });
    }
    if (err instanceof PgferryError) throw err;
    const dumpError = dumpStderr();
    if (dumpError) throw new PgferryError('DumpFailed', `pg_dump failed: ${dumpError}`, { cause: err });
    throw err;
  }
}

/**
 * A stream into `out` that holds its writer back as `out` does only once `from` has settled:
 * before, every byte written waits in `out` however many (a TOC of many entries, read whole by
 * another reader of the same bytes before `out`'s reader starts).
 */
function heldUntil(out: Writable, from: Promise<unknown>): Writable {
  let holding = false;
  const hold = () => {
    holding = true;
  };
  from.then(hold, hold);
  const held = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, done) {
      if (out.write(chunk) || !holding) done();
      else out.once('drain', () => done());
    },
    final(done) {
      out.end();
      done();
    },
  });
  // `out` closed (its reader failed, or was stopped): the writer goes on without it.
  out.once('close', () => held.destroy());
  return held;
}

/** What to do about a row pg_dump cannot read (a migration moves every table's rows). */
const MIGRATE_REMEDY = () =>
  'No pg_dump-based migration can move it: keep such values as large objects, which are dumped in pieces, ' +
  'or outside the database, then migrate again';

async function exitStatus(child: ChildProcess, tool: string, stderr: () => string): Promise<void> {
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) {
    const oversized = tool === 'pg_dump' ? oversizedRowFailure(stderr(), MIGRATE_REMEDY) : undefined;
    throw new PgferryError(
      tool === 'pg_dump' ? 'DumpFailed' : 'MigrateFailed',
      oversized ?? `${tool} failed (${code ?? signal}): ${stderr() || 'no error output'}`,
    );
  }
}
