/**
 * Running PostgreSQL's client tools (pg_dump, pg_dumpall, pg_restore, psql) as child processes,
 * by core/process.ts's one rule for what is kept of their standard error (its last
 * {@link STDERR_KEPT_CHARS} characters), from which messages quote the first error. And the
 * parallel two-pass pg_restore.
 */
import type { ChildProcess } from 'node:child_process';
import { rm, stat, writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Client } from 'pg';
import { PgferryError } from '../errors';
import { fileChunks } from '../file-chunks';
import { runProcess, type ToolRun } from '../process';
import { ArchiveScanner, type ArchiveTocEntry, archiveEncoding } from './archive';
import { readArchiveToc } from './archive-toc';
import type { PgToolBinary } from './binaries';
import { dropFirst } from './clean-drops';
import { loadTableData } from './copy-load';
import { copySessionSetup, copyStatement, namesNotExact } from './copy-stream';
import { createLargeObjects, isLargeObjectLine } from './large-objects';
import { quoteIdent } from './quote';

export { keepStderr, STDERR_KEPT_CHARS, type ToolRun } from '../process';

/**
 * Runs `tool` with `args` to its end, `input` (if any) on its standard input; never throws for
 * the tool's failure: the caller reads `code` and words the error.
 */
export async function runTool(
  tool: PgToolBinary,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; onChild?: (child: ChildProcess) => void; input?: string },
): Promise<ToolRun> {
  return runProcess(tool.path, args, opts);
}

/** The first error pg_restore/psql reported, with the command it was running. */
export function firstError(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim());
  const index = lines.findIndex((l) => /error|fatal/i.test(l));
  if (index < 0) return lines.slice(-2).join(' | ') || 'no error output';
  return lines.slice(index, index + 2).join(' | ');
}

/**
 * pg_dump's failure to COPY a row out because it is larger than PostgreSQL sends, worded with
 * `remedy` (given the table's name, what the command's user can do): the server builds each row's
 * COPY text in one buffer of at most 1 GB (MaxAllocSize), so a bytea of 512 MB or more (hex
 * doubles it), or a row of several large values, fails with "invalid memory alloc request size"
 * and no pg_dump-based tool can read it. A damaged row (a TOAST pointer with a wrong length) fails
 * the same way, so the message names both. `stderr` is {@link collectTail}'s: the error line, the
 * server's message and the command. Undefined for any other failure.
 */
export function oversizedRowFailure(stderr: string, remedy: (table: string) => string): string | undefined {
  const size = /invalid memory alloc request size (\d+)/.exec(stderr);
  // pg_dump names the table schema-qualified, each part quoted where needed; the line may be cut.
  const table = /Command was: COPY ((?:"(?:[^"]|"")*"|[^\s."(]+)\.(?:"(?:[^"]|"")*"|[^\s."(]+))/.exec(stderr);
  if (!size || !table) return undefined;
  return (
    `table ${table[1]} has a row PostgreSQL cannot send: its COPY text needs ${Number(size[1]).toLocaleString('en-US')} bytes, ` +
    `over PostgreSQL's limit of 1 GB for one row (a bytea of 512 MB or more; a damaged row fails the same way). ` +
    remedy(table[1])
  );
}

/**
 * Keeps what a child wrote to stderr, for error messages: three lines from its first error (which
 * say why, e.g. the server's message and its HINT), else its last three lines. Each line is cut
 * at `maxLineChars` (pg_dump quotes whole queries, e.g. a LOCK TABLE of thousands of tables), and
 * only the first and the last lines of a long output are kept.
 */
export function collectTail(stream: Readable, maxLineChars = 400, keepLines = 50): () => string {
  const head: string[] = [];
  const tail: string[] = [];
  let partial = '';
  let cut = false;
  const add = (line: string) => {
    const text = line.trim();
    if (!text) return;
    if (head.length < keepLines) head.push(text);
    else {
      tail.push(text);
      if (tail.length > keepLines) tail.shift();
    }
  };
  stream.on('data', (d: Buffer) => {
    const lines = d.toString().split('\n');
    for (let i = 0; i < lines.length; i++) {
      const last = i === lines.length - 1;
      if (!cut) {
        partial += lines[i];
        if (partial.length > maxLineChars) {
          partial = `${partial.slice(0, maxLineChars)}…`;
          cut = true;
        }
      }
      if (!last) {
        add(partial);
        partial = '';
        cut = false;
      }
    }
  });
  return () => {
    const lines = [...head, ...tail, ...(partial.trim() ? [partial.trim()] : [])];
    const firstError = lines.findIndex((line) => /\berror\b/i.test(line));
    return (firstError < 0 ? lines.slice(-3) : lines.slice(firstError, firstError + 3)).join(' | ');
  };
}

/**
 * The TOC entries pg_restore restores after everything else: privileges (grants, default
 * privileges), then what needs them (materialized views' data, event triggers and their
 * comments). Run in parallel, pg_restore hands them to its workers ordered only by their own
 * object, so a grant made by a role other than the owner (`SET SESSION AUTHORIZATION grantor;
 * GRANT …`) can run before the schema grant it needs and fail with "permission denied for schema"
 * — found by the fidelity test, intermittently. They are restored apart, in one job, in order.
 */
const RESTORED_LAST =
  /^\d+; \d+ \d+ (ACL|ACL LANGUAGE|DEFAULT ACL|MATERIALIZED VIEW DATA|EVENT TRIGGER|(COMMENT|SECURITY LABEL) - EVENT TRIGGER) /;

/**
 * `ALTER INDEX … ATTACH PARTITION` entries. pg_restore gives them no lock dependencies (they
 * depend on two indexes, not on a table), so in parallel it runs them beside anything — and they
 * take locks up a partition tree in an order nothing else does: the partition locked
 * AccessExclusive, its parent table AccessShare, and, when the attachment completes a partitioned
 * index that is itself a partition (a sub-partitioned table), that index's parent index and table
 * AccessExclusive (`validatePartitionedIndex`). Two attachments of different indexes of one
 * sub-partitioned tree, or one and a trigger or constraint recursing down that tree, then wait on
 * each other: "deadlock detected … AccessExclusiveLock", seen in a migration of
 * test/support/complex-database.ts on CI. They are restored apart, in one job, in order, with
 * nothing beside them.
 */
const INDEX_ATTACH = /^\d+; \d+ \d+ INDEX ATTACH /;

/** One pg_restore run of a restore: its part of the archive's list, and whether in parallel. */
export interface RestorePass {
  entries: string[];
  parallel: boolean;
}

/**
 * Below this many bytes of COPY text a table is never split: its load takes well under a second.
 */
export const SPLIT_MIN_BYTES = 32 * 1024 * 1024;

/** The TOC entries pg_dump puts in the post-data section that build something on a table. */
const POST_DATA_BUILDS = /^(INDEX|INDEX ATTACH|CONSTRAINT|FK CONSTRAINT|TRIGGER|RULE|POLICY|STATISTICS)$/;

/**
 * Below this many bytes of table data (COPY text) for each index, key, foreign key or trigger to
 * build, a post-data run takes one job ({@link postDataJobs}).
 */
export const POST_DATA_PARALLEL_MIN_BYTES = 64 * 1024;

/**
 * The jobs of a post-data run of `toc`'s archive, whose tables hold `dataBytes` of COPY text:
 * `jobs`, but one where its builds are many and their tables small. pg_restore's parallel mode
 * costs every entry its leader's dispatch and the server two sessions changing the catalogs at
 * once, which only pays where the builds take longer than that. On 4,000 tables of 50–200 rows
 * (8,000 entries, ~2 KB of data each) one job took less time in 5 of 7 whole restores and less
 * CPU in every one (pg_restore's 1.5–1.9 s, the server's 0.4–3.8 s); on 200 partitions of 3 MB
 * (~0.3 MB an entry), two jobs were faster (docs/benchmark.md, "Many small tables' indexes in
 * one job").
 */
export function postDataJobs(jobs: number, toc: readonly ArchiveTocEntry[], dataBytes: number): number {
  const builds = toc.filter((e) => e.desc !== null && POST_DATA_BUILDS.test(e.desc)).length;
  return builds > 0 && dataBytes / builds < POST_DATA_PARALLEL_MIN_BYTES ? 1 : jobs;
}

/**
 * The jobs of a whole restore from files (one pg_restore run: pre-data, data, post-data): one where
 * {@link postDataJobs} gives its post-data one and no table holds `splitMinBytes` of data (none to
 * split), else `jobs`. Tables that small load one after the other as fast as dispatched to
 * pg_restore's workers, and their builds faster (docs/benchmark.md, "Many small tables in one job,
 * from files").
 */
export function wholeRestoreJobs(
  jobs: number,
  toc: readonly ArchiveTocEntry[],
  /** Each table's bytes of data (COPY text). */
  tableBytes: readonly number[],
  splitMinBytes = SPLIT_MIN_BYTES,
): number {
  if (tableBytes.some((bytes) => bytes >= splitMinBytes)) return jobs;
  return postDataJobs(
    jobs,
    toc,
    tableBytes.reduce((sum, bytes) => sum + bytes, 0),
  );
}

/** What {@link pgRestoreParallel} needs to load the largest tables in parallel streams. */
export interface SplitLoad {
  /** A new session on the target database: each stream of a split table is one COPY session. */
  connect: () => Promise<Client>;
  /** The smallest table data (bytes of COPY text) that is split; {@link SPLIT_MIN_BYTES} by default. */
  minBytes?: number;
}

/** What a restore of an archive is given (see {@link pgRestoreParallel}). */
export interface PgRestoreOptions {
  /** pg_restore's options: the target (`--dbname`), what it restores, how. */
  args: string[];
  jobs: number;
  dumpFile: string;
  env: NodeJS.ProcessEnv;
  onChild?: (child: ChildProcess) => void;
  split?: SplitLoad;
  /**
   * Runs once the pre-data (the tables) is restored, before any table's data is loaded (the
   * autovacuum hold, core/postgres/autovacuum-hold.ts).
   */
  afterPreData?: () => Promise<void>;
  /** Only what this selects ({@link PgRestoreSelection}); else the whole archive, or what `args` select. */
  selection?: PgRestoreSelection;
  /**
   * `dumpFile`'s TOC, when the caller reads it anyway: read again here otherwise. One copy of a
   * TOC of many large objects (an entry each) is what the runner holds, not one per reader.
   */
  toc?: () => Promise<ArchiveTocEntry[]>;
}

/**
 * `pg_restore --jobs` of `dumpFile` with `args`, in the passes of {@link planRestorePasses}, each
 * run given its part of the archive's list. Not with `--clean`: a clean restore drops first
 * ({@link pgRestoreArchive}).
 *
 * With `split` (and more than one job), a table whose data is more than its share of
 * the archive's (see {@link tablesToSplit}) is not left to one of pg_restore's jobs, which would
 * load it alone while the others wait: the first pass is cut where the data section begins, and
 * its pre-data runs while the archive is read through for the tables' sizes; the rest runs as one
 * pass when no table is split. Else, while pg_restore loads the other tables' data and builds
 * what does not need the split tables (the post-data of a table it has loaded starts as soon as
 * that table is in, as in any `pg_restore --jobs`), each split table's COPY text, read by this
 * process straight from the archive (`split.connect`'s sessions, {@link loadSplitTables}), is
 * dealt out, a piece of whole lines at a time, to `jobs` COPY sessions; the post-data that waits
 * for a split table ({@link waitingForTables}: its indexes and constraints, what depends on them)
 * follows once both are done.
 */
export async function pgRestoreParallel(
  pgRestore: PgToolBinary,
  opts: PgRestoreOptions & {
    /**
     * Aborted to stop the restore (it was interrupted, or one running beside it failed): its
     * pg_restores end, what it still loads stops.
     */
    signal?: AbortSignal;
  },
): Promise<void> {
  const { args, dumpFile, env, onChild, split, signal, afterPreData, selection } = opts;
  const jobs = preDataOnly(args) ? 1 : opts.jobs;
  const run = (more: string[]) => runPgRestore(pgRestore, [...more, dumpFile], env, onChild);
  if (args.includes('--clean'))
    throw new Error('pgRestoreParallel: a clean restore drops first (pgRestoreArchive)');
  const inOneRun = jobs === 1 || args.includes('--no-privileges');
  const splitting = split !== undefined && jobs > 1;
  if (inOneRun && !splitting && !afterPreData && !selection) {
    await run([...args, `--jobs=${jobs}`]);
    return;
  }
  let entries = await listedEntries(pgRestore, dumpFile, selection, env, onChild);
  // Nothing of this archive selected (a side archive of other tables' data): nothing to read.
  if (entries.length === 0) return;
  // The pass over the archive for the tables' sizes starts at once: it runs beside the pre-data
  // (the tables must exist before any is loaded, whichever are split).
  // It keeps only the entries with data: the TOC read below is the one held.
  const sizing = splitting ? readTableDataSizes(dumpFile, (e) => e.hadDumper) : undefined;
  const attaches = entries.some((line) => INDEX_ATTACH.test(line));
  const readToc = opts.toc ?? (() => readArchiveToc(fileChunks(dumpFile)));
  const toc =
    attaches || afterPreData ? await readToc() : sizing ? await readToc().catch(() => undefined) : undefined;
  if (toc) {
    // The listing is handed over (not held here meanwhile: a line per large object).
    const listing = { entries };
    entries = [];
    await largeObjectsFirst(listing, toc, { args, env, split, selection, signal });
    entries = listing.entries;
  }
  const passes = inOneRun
    ? [{ entries, parallel: true }]
    : planRestorePasses(entries, attaches ? toc : undefined);
  // Stages run one after the other; the parts of a stage at once.
  let stages: { pass?: RestorePass; tables?: number[] }[][] = passes.map((pass) => [{ pass }]);
  const lists: string[] = [];
  const listFile = async (entries: string[]) => {
    const file = `${dumpFile}.pass${lists.length}.list`;
    lists.push(file);
    await writeFile(file, `${entries.join('\n')}\n`);
    return file;
  };
  let sizes: ArchiveSizes | undefined;
  const part =
    ({ pass, tables }: { pass?: RestorePass; tables?: number[] }) =>
    async (track: (child: ChildProcess) => void, stop: AbortSignal) => {
      if (tables?.length && sizes) {
        await loadSplitTables(pgRestore, tables, sizes, {
          args,
          sessions: jobs,
          dumpFile,
          env,
          onChild: track,
          connect: (split as SplitLoad).connect,
          // Aborted too when `signal` is: atOnce, which runs every part, follows it.
          signal: stop,
        });
      }
      if (!pass?.entries.length) return;
      const list = await listFile(pass.entries);
      const more = [...args, ...(pass.parallel ? [`--jobs=${jobs}`] : []), `--use-list=${list}`];
      await runPgRestore(pgRestore, [...more, dumpFile], env, track);
    };
  try {
    if ((sizing || afterPreData) && toc && passes[0]) {
      const [pre] = splitFirstPass(passes[0], [], toc);
      const [ran, sized] = await Promise.allSettled([
        atOnce([part({ pass: pre })], onChild, signal),
        sizing ?? Promise.resolve(undefined),
      ]);
      if (ran.status === 'rejected') throw ran.reason;
      await afterPreData?.();
      // The whole TOC (its encoding, names, COPY statements) with the sizes.
      sizes = sized.status === 'fulfilled' && sized.value ? { ...sized.value, toc } : undefined;
      const rest = { entries: passes[0].entries.slice(pre.entries.length), parallel: passes[0].parallel };
      const inRest = new Map(rest.entries.map((l) => [idOf(l), l]));
      // Only entries whose data this process can load (names it can send, a COPY statement, a
      // block found).
      const namesSent = sizes !== undefined && !namesNotExact(sizes.toc);
      const loadable = (id: number) =>
        namesSent && sizes?.offsets.has(id) && sizes.toc.some((e) => e.dumpId === id && e.copyStmt);
      const splitIds = sizes
        ? tablesToSplit(sizes.bytes, jobs, split?.minBytes).filter((id) => inRest.has(id) && loadable(id))
        : [];
      if (splitIds.length) {
        const [, data, post] = splitFirstPass(rest, splitIds, toc);
        const [now, later] = postDataNowAndLater(post, waitingForTables(toc, splitIds));
        stages = [
          [{ pass: { ...data, entries: [...data.entries, ...now.entries] } }, { tables: splitIds }],
          [{ pass: later }],
          ...stages.slice(1),
        ];
      } else {
        stages = [[{ pass: rest }], ...stages.slice(1)];
      }
    }
    for (const stage of stages) await atOnce(stage.map(part), onChild, signal);
  } finally {
    await Promise.all(lists.map((file) => rm(file, { force: true })));
  }
}

const idOf = (line: string) => Number(line.slice(0, line.indexOf(';')));

/**
 * The pre-data section of `dumpFile` (a migration's definitions, whose data pg_restore then
 * restores from the stream), restored by `run` given pg_restore's arguments: its pg_dump ≤ 16
 * large objects (`BLOB` entries of `toc`) first created by this process in batches in a session
 * of `connect` where {@link largeObjectsFirst} can (core/postgres/large-objects.ts), and `run`
 * then given a list of the rest.
 */
export async function pgRestorePreData(
  pgRestore: PgToolBinary,
  opts: Pick<PgRestoreOptions, 'dumpFile' | 'env' | 'onChild'> & {
    toc: readonly ArchiveTocEntry[];
    connect: () => Promise<Client>;
    run: (args: string[]) => Promise<void>;
    signal?: AbortSignal;
  },
): Promise<void> {
  const { dumpFile, env, onChild, toc, connect, run, signal } = opts;
  const args = ['--section=pre-data'];
  if (!toc.some((e) => e.desc === 'BLOB')) return run(args);
  const listing = { entries: await listedEntries(pgRestore, dumpFile, undefined, env, onChild) };
  if (!(await largeObjectsFirst(listing, toc, { args: [], env, split: { connect }, signal })))
    return run(args);
  const list = `${dumpFile}.rest.list`;
  await writeFile(list, `${listing.entries.join('\n')}\n`);
  try {
    await run([...args, `--use-list=${list}`]);
  } finally {
    await rm(list, { force: true });
  }
}

/**
 * pg_dump ≤ 16's large objects among `entries` (pg_restore's `--list` lines of the archive whose
 * TOC is `toc`), created by this process in batches before the pre-data
 * (core/postgres/large-objects.ts), where it can: a restore of the whole archive (no selection,
 * neither in `args` nor a `selection`) into a new database (or one a clean restore emptied of
 * them: pgRestoreArchive), whose names it sends exactly, with `split`'s sessions. Returns the
 * entries left to pg_restore in `listing` (replaced before they are created), and whether it created
 * any.
 */
async function largeObjectsFirst(
  listing: { entries: string[] },
  toc: readonly ArchiveTocEntry[],
  opts: Pick<PgRestoreOptions, 'args' | 'env' | 'split' | 'selection'> & { signal?: AbortSignal },
): Promise<boolean> {
  const { args, env, split, selection, signal } = opts;
  if (
    !split ||
    selection ||
    selective(args) ||
    !listing.entries.some(isLargeObjectLine) ||
    namesNotExact(toc)
  )
    return false;
  // Their lines are not held while they are created (one per object; no variable here may keep
  // the whole listing either): their ids, 4 bytes each.
  const ids = new Int32Array(listing.entries.filter(isLargeObjectLine).map(idOf));
  listing.entries = listing.entries.filter((line) => !isLargeObjectLine(line));
  await createLargeObjects(toc, ids, {
    connect: split.connect,
    setup: pgRestoreSessionSetup(toc, args, env),
    withOwners: !args.includes('--no-owner'),
    signal,
  });
  return true;
}

/**
 * Whether `args` restore the pre-data section alone. pg_restore restores the pre-data in one
 * connection whatever `--jobs` says (its leader does it before it starts the workers, "faster in
 * a single connection": pg_backup_archiver.c, `restore_toc_entries_prefork`), so more jobs only
 * cost: the workers' start and connections, pgRestoreParallel's `--list` run and its list, and the
 * leader's bookkeeping of every entry in parallel mode (on 4,000 tables of 100 rows, 1.0 s of
 * pg_restore's CPU against 0.1, and 1–3 s more to wait).
 */
function preDataOnly(args: readonly string[]): boolean {
  const sections = args.filter((a) => a.startsWith('--section='));
  return sections.length > 0 && sections.every((a) => a === '--section=pre-data');
}

/**
 * The post-data part of a pass cut in two: what runs beside the loads of the split tables, and
 * what waits for them — the entries in `waiting` ({@link waitingForTables}), and those
 * {@link RESTORED_LAST} (privileges, materialized views' data, event triggers: in a pass that
 * holds them, as with `--no-privileges`, an event trigger created beside the loads would fire on
 * the indexes built after them).
 */
export function postDataNowAndLater(
  post: RestorePass,
  waiting: ReadonlySet<number>,
): [RestorePass, RestorePass] {
  const later = (line: string) => waiting.has(idOf(line)) || RESTORED_LAST.test(line);
  return [
    { ...post, entries: post.entries.filter((l) => !later(l)) },
    { ...post, entries: post.entries.filter(later) },
  ];
}

/**
 * The TOC entries that need the tables of the `tableData` entries loaded: those depending on one of
 * them or on its table, directly or through other entries — the table's indexes, constraints and
 * triggers, a foreign key referencing its key, a materialized view over it and that view's data.
 * pg_restore takes a dependency on an entry it is not given as met, so a run that leaves a table's
 * data to others must leave these out too, until that data is in.
 */
export function waitingForTables(toc: readonly ArchiveTocEntry[], tableData: readonly number[]): Set<number> {
  const byId = new Map(toc.map((e) => [e.dumpId, e]));
  const dependents = new Map<number, number[]>();
  for (const e of toc) {
    for (const d of e.dependencies) {
      const list = dependents.get(d);
      if (list) list.push(e.dumpId);
      else dependents.set(d, [e.dumpId]);
    }
  }
  const todo: number[] = [];
  for (const id of tableData) {
    todo.push(id);
    for (const d of byId.get(id)?.dependencies ?? []) if (byId.get(d)?.desc === 'TABLE') todo.push(d);
  }
  const waiting = new Set<number>();
  while (todo.length) {
    for (const id of dependents.get(todo.pop() as number) ?? []) {
      if (!waiting.has(id)) {
        waiting.add(id);
        todo.push(id);
      }
    }
  }
  return waiting;
}

/** What one read through an archive tells: its TOC, each table's data bytes and where they start. */
interface ArchiveSizes {
  toc: readonly ArchiveTocEntry[];
  bytes: Map<number, number>;
  offsets: Map<number, number>;
  intSize: number;
}

/** The archive's TOC and the bytes of each table's data, read through the archive once. */
async function readTableDataSizes(
  dumpFile: string,
  /** Which of the TOC's entries the result keeps (see ArchiveScanner's `keep`); all by default. */
  keep?: (entry: ArchiveTocEntry) => boolean,
): Promise<ArchiveSizes | undefined> {
  let toc: ArchiveTocEntry[] | undefined;
  const scanner = new ArchiveScanner((entries) => {
    toc = entries;
  }, keep);
  try {
    for await (const chunk of fileChunks(dumpFile)) scanner.write(chunk);
  } catch {
    // Not an archive whose data this reader reads (a compressed one): pg_restore alone restores it.
    return undefined;
  }
  return toc && scanner.header
    ? {
        toc,
        bytes: scanner.tableDataBytes(),
        offsets: scanner.tableDataOffsets(),
        intSize: scanner.header.intSize,
      }
    : undefined;
}

/**
 * The TABLE DATA entries (by dumpId, largest first) worth loading in `jobs` streams: with `jobs`
 * sessions a restore takes at least its largest table's load and at least its data's over `jobs`;
 * a table with more than that share of the data (`bytes × jobs > total`) is the one that decides,
 * and only loading it in parallel shortens it. Fewer than `jobs` tables can be so large. Tables
 * under `minBytes` are left to pg_restore.
 */
export function tablesToSplit(
  bytes: ReadonlyMap<number, number>,
  jobs: number,
  minBytes = SPLIT_MIN_BYTES,
): number[] {
  if (jobs < 2) return [];
  const total = [...bytes.values()].reduce((sum, b) => sum + b, 0);
  return [...bytes.entries()]
    .filter(([, b]) => b * jobs > total && b >= minBytes)
    .sort((a, b) => b[1] - a[1])
    .map(([id]) => id);
}

/**
 * A parallel pass cut where the archive's data section begins and ends (at its first and after its
 * last entry with data or a SEQUENCE SET: pg_dump orders its TOC by section), the `split` tables'
 * data left out: pre-data, the other data, post-data.
 */
export function splitFirstPass(
  pass: RestorePass,
  split: readonly number[],
  toc: readonly ArchiveTocEntry[],
): [RestorePass, RestorePass, RestorePass] {
  const data = new Set(toc.filter((e) => e.hadDumper || e.desc === 'SEQUENCE SET').map((e) => e.dumpId));
  let start = -1;
  let end = 0;
  for (const [i, line] of pass.entries.entries()) {
    if (!data.has(idOf(line))) continue;
    if (start < 0) start = i;
    end = i + 1;
  }
  if (start < 0) start = end;
  const skipped = new Set(split);
  const { parallel } = pass;
  return [
    { entries: pass.entries.slice(0, start), parallel },
    { entries: pass.entries.slice(start, end).filter((l) => !skipped.has(idOf(l))), parallel },
    { entries: pass.entries.slice(end), parallel },
  ];
}

/**
 * Loads the `ids` TABLE DATA entries, each in `sessions` COPY sessions of this process reading its
 * data straight from the archive (core/postgres/copy-load.ts), with the session settings
 * pg_restore's have (`copySessionSetup`, as a migration's COPY sessions get them), `--role`'s
 * role and `PGOPTIONS`' settings. The
 * restore's selection (`--schema`, `--table`, …) is pg_restore's own: `pg_restore --list` with it
 * lists the entries it would restore, and an entry it leaves out is not loaded.
 */
async function loadSplitTables(
  pgRestore: PgToolBinary,
  ids: readonly number[],
  sizes: ArchiveSizes,
  opts: {
    args: string[];
    sessions: number;
    dumpFile: string;
    env: NodeJS.ProcessEnv;
    onChild?: (child: ChildProcess) => void;
    connect: () => Promise<Client>;
    signal?: AbortSignal;
  },
): Promise<void> {
  const { args, env } = opts;
  const listArgs = args.filter((a) => !/^--(dbname|exit-on-error|jobs|use-list|section)\b/.test(a));
  const listed = new Set(
    outputLines(
      (await runPgRestore(pgRestore, [...listArgs, '--list', opts.dumpFile], env, opts.onChild)).stdout,
    )
      .filter((line) => /^\d+;/.test(line))
      .map(idOf),
  );
  const byId = new Map(sizes.toc.map((e) => [e.dumpId, e]));
  const setup = pgRestoreSessionSetup(sizes.toc, args, env);
  const encoding = archiveEncoding(sizes.toc);
  for (const id of ids) {
    const entry = byId.get(id);
    const offset = sizes.offsets.get(id);
    if (!listed.has(id) || !entry?.copyStmt || offset === undefined) continue;
    await loadTableData({
      dumpFile: opts.dumpFile,
      offset,
      intSize: sizes.intSize,
      copyStmt: copyStatement(entry.copyStmt, encoding),
      setup,
      sessions: opts.sessions,
      connect: opts.connect,
      signal: opts.signal,
      name: `${entry.namespace ? `${quoteIdent(entry.namespace)}.` : ''}${quoteIdent(entry.tag ?? '')}`,
    });
  }
}

/**
 * What a session of this process runs to restore as pg_restore's sessions do: their settings
 * (`copySessionSetup`, `PGOPTIONS`' settings) and `--role`'s role.
 */
function pgRestoreSessionSetup(
  toc: readonly ArchiveTocEntry[],
  args: string[],
  env: NodeJS.ProcessEnv,
): string[] {
  const setup = copySessionSetup(toc, sessionSettings(env.PGOPTIONS));
  const role = args.find((a) => a.startsWith('--role='));
  if (role) setup.push(`SET ROLE ${quoteIdent(role.slice('--role='.length))}`);
  return setup;
}

/** Whether `args` restore part of the archive (a selection, a section, a list). */
function selective(args: readonly string[]): boolean {
  return args.some(
    (a) =>
      /^--(schema|table|section|use-list|exclude-schema|exclude-table|data-only|schema-only|index|function|trigger)\b/.test(
        a,
      ) || /^-[nNtLaIPT]/.test(a),
  );
}

/** The `-c name=value` settings of a `PGOPTIONS` string (as core/postgres/restore-session.ts writes it). */
export function sessionSettings(options: string | undefined): [string, string][] {
  return [...(options ?? '').matchAll(/-c\s+([A-Za-z_.]+)=(\S+)/g)].map((m) => [m[1], m[2]]);
}

/**
 * A backup's archive restored into the database `args` name (pg_restore's options): its
 * `tableData` archives, a parallel backup's, with {@link pgRestoreSections}, else with
 * {@link pgRestoreParallel}. With `--clean` in `args`, everything the archive's clean run would
 * drop is dropped first, in one go (`dropFirst`, with `psql`), and the archive then restores as
 * into an emptied database, in the passes of any restore: `pg_restore --clean --jobs` runs
 * everything but the drops in parallel, the index attachments beside anything (the deadlock of
 * {@link INDEX_ATTACH}, met by a clean restore on CI), and a parallel backup's sections, each
 * dropping its own part, would meet the post-data's foreign keys.
 */
export async function pgRestoreArchive(
  pgRestore: PgToolBinary,
  opts: PgRestoreOptions & {
    /** A parallel backup's data-only archives. */
    tableData: string[];
    /** psql, of pg_restore's version: runs a clean restore's drops. */
    psql?: PgToolBinary;
  },
): Promise<void> {
  const { dumpFile, env, onChild, psql, selection } = opts;
  let { args } = opts;
  if (args.includes('--clean')) {
    if (!psql) throw new PgferryError('NoSuitablePgDump', `psql is missing beside ${pgRestore.path}`);
    await dropFirst(pgRestore, psql, { args, dumpFile, env, onChild, selection });
    args = args.filter((a) => a !== '--clean' && a !== '--if-exists');
  }
  const rest = { ...opts, args };
  if (opts.tableData.length) await pgRestoreSections(pgRestore, rest);
  else await pgRestoreParallel(pgRestore, rest);
}

/**
 * A parallel backup's restore (`backup --jobs`): the main archive's pre-data section (its large
 * objects first, in batches, as {@link pgRestoreParallel} creates them); then, at
 * once, its data section and every data-only archive, the jobs shared among them by their bytes
 * (at least one each; with `split`, an archive given two or more splits its largest tables as
 * {@link pgRestoreParallel} does); each archive's post-data entries (indexes, constraints, what
 * needs the data) run as soon as the tables they need are loaded ({@link postDataGroups}): the main
 * archive's as soon as its own data is in, while the side archives still load (as one archive's
 * `pg_restore -j` builds a table's indexes while other tables load), a side archive's once its
 * data and the main archive's are in; what needs the tables of several side archives, a
 * partitioned table's whole tree or an index attachment, last, once all data is in. Each group runs
 * in {@link planRestorePasses}'s passes. The first failure stops the other pg_restores. Not with
 * `--clean` (see {@link pgRestoreArchive}). By hand: `pg_restore --section=pre-data -d db
 * dump.pgdump`, `pg_restore --data-only -d db` each `table-data-N.pgdump` and `pg_restore
 * --section=data -d db dump.pgdump` (in any order, or at once), then `pg_restore
 * --section=post-data -d db dump.pgdump`.
 */
export async function pgRestoreSections(
  pgRestore: PgToolBinary,
  opts: PgRestoreOptions & { tableData: string[] },
): Promise<void> {
  const { args, jobs, dumpFile, tableData, env, split, selection } = opts;
  if (args.includes('--clean'))
    throw new Error('pgRestoreSections: a clean restore drops first (pgRestoreArchive)');
  const archives = [dumpFile, ...tableData];
  const [bytes, tocs, entries] = await Promise.all([
    Promise.all(archives.map(async (file) => (await stat(file)).size)),
    Promise.all(archives.map((file) => readArchiveToc(fileChunks(file)))),
    // The whole list (of what `selection` selects), as each group's run selects its post-data
    // with `--section` (a list of the section alone would leave out the privileges pg_restore
    // restores with it).
    listedEntries(pgRestore, dumpFile, selection, env, opts.onChild),
  ]);
  const shares = dataJobShares(bytes, jobs);
  const dataOf = new Map<number, number>();
  for (const [i, toc] of tocs.entries()) {
    for (const e of toc) if (e.desc === 'TABLE DATA') dataOf.set(e.oid, i);
  }
  const groupOf = postDataGroups(entries.map(idOf), tocs[0], dataOf);
  // Privileges and what needs them stay together, last (see RESTORED_LAST).
  const group = (line: string) => (RESTORED_LAST.test(line) ? 'last' : groupOf.get(idOf(line)));
  const groups = archives.map((_, i) => entries.filter((l) => group(l) === i));
  const last = entries.filter((l) => group(l) === 'last');
  const lists: string[] = [];
  const listFile = async (name: string, lines: string[]) => {
    const list = `${dumpFile}.${name}${lists.length}.list`;
    lists.push(list);
    await writeFile(list, `${lines.join('\n')}\n`);
    return list;
  };
  const runGroup = async (entries: string[], groupJobs: number, track?: (child: ChildProcess) => void) => {
    for (const pass of planRestorePasses(entries, tocs[0])) {
      const list = await listFile('post', pass.entries);
      const more = [...args, '--section=post-data', ...(pass.parallel ? [`--jobs=${groupJobs}`] : [])];
      await runPgRestore(pgRestore, [...more, `--use-list=${list}`, dumpFile], env, track);
    }
  };
  try {
    // The main archive's large objects, created in batches; its pre-data run lists the rest.
    const listing = { entries };
    const preDataList = (await largeObjectsFirst(listing, tocs[0], { args, env, split, selection }))
      ? [`--use-list=${await listFile('pre', listing.entries)}`]
      : [];
    await pgRestoreParallel(pgRestore, {
      args: [...args, '--section=pre-data', ...preDataList],
      jobs,
      dumpFile,
      env,
      onChild: opts.onChild,
      selection,
    });
    await opts.afterPreData?.();
    let mainPostDone: Promise<void> = Promise.resolve();
    await atOnce(
      archives.map((file, i) => async (track: (child: ChildProcess) => void, stop: AbortSignal) => {
        const load = pgRestoreParallel(pgRestore, {
          args: [...args, i === 0 ? '--section=data' : '--data-only'],
          jobs: shares[i],
          dumpFile: file,
          env,
          onChild: track,
          split,
          signal: stop,
          selection,
        });
        if (i === 0) {
          mainPostDone = load.then(() => runGroup(groups[0], shares[0], track));
          await mainPostDone;
          return;
        }
        await load;
        // A side archive's indexes and keys may need the main archive's (a foreign key its key).
        await mainPostDone;
        await runGroup(groups[i], shares[i], track);
      }),
      opts.onChild,
    );
    await runGroup(last, jobs, opts.onChild);
  } finally {
    await Promise.all(lists.map((file) => rm(file, { force: true })));
  }
}

/**
 * When each entry of a parallel backup's main archive (`ids`, its `toc`; those of its post-data
 * section are what this is for) can run: the
 * index of the one archive whose tables it needs (0, the main archive; a side archive also when it
 * needs the main archive's tables as well, which are in by then), or `last` — once every archive's
 * data is in. An entry needs the tables it depends on, directly or through other post-data entries
 * (a foreign key needs the key it references); a table's data is in the archive `dataOf` maps its
 * oid to. An entry needs everything when it needs a table no archive holds data of (a partitioned
 * table: its indexes and keys reach into every partition), a relation that is not a table (a
 * materialized view's data), the tables of more than one side archive, or no table at all; and so
 * do index attachments and what depends on them (see {@link planRestorePasses}).
 */
export function postDataGroups(
  ids: readonly number[],
  toc: readonly ArchiveTocEntry[],
  dataOf: ReadonlyMap<number, number>,
): Map<number, number | 'last'> {
  const byId = new Map(toc.map((e) => [e.dumpId, e]));
  const listed = new Set(ids);
  const RELATIONS = /^(VIEW|MATERIALIZED VIEW|FOREIGN TABLE)$/;
  const needs = new Map<number, Set<number> | 'last'>();
  const need = (id: number, seen: Set<number>): Set<number> | 'last' => {
    const known = needs.get(id);
    if (known) return known;
    const entry = byId.get(id);
    if (!entry || seen.has(id) || entry.desc === 'INDEX ATTACH') return 'last';
    seen.add(id);
    const archives = new Set<number>();
    let result: Set<number> | 'last' = archives;
    for (const dep of entry.dependencies) {
      const d = byId.get(dep);
      if (d?.desc === 'TABLE') {
        const archive = dataOf.get(d.oid);
        if (archive === undefined) result = 'last';
        else archives.add(archive);
      } else if (d?.desc && RELATIONS.test(d.desc)) {
        result = 'last';
      } else if (listed.has(dep)) {
        const sub = need(dep, seen);
        if (sub === 'last') result = 'last';
        else for (const a of sub) archives.add(a);
      }
      if (result === 'last') break;
    }
    needs.set(id, result);
    return result;
  };
  const groups = new Map<number, number | 'last'>();
  for (const id of ids) {
    const n = need(id, new Set());
    const sides = n === 'last' ? [] : [...n].filter((a) => a > 0);
    groups.set(id, n === 'last' || n.size === 0 || sides.length > 1 ? 'last' : (sides[0] ?? 0));
  }
  return groups;
}

/**
 * The jobs of each archive's data load, given the archives' bytes: their share of `jobs` by bytes,
 * rounded up (so together up to `jobs` + archives − 1: a job left idle costs more than a session
 * shared). An archive with more than its even share gets two or more, so that the dominant table
 * it holds is split as a single archive's would be (`tablesToSplit`).
 */
export function dataJobShares(bytes: readonly number[], jobs: number): number[] {
  const total = bytes.reduce((sum, b) => sum + b, 0);
  return bytes.map((b) => Math.max(1, total > 0 ? Math.ceil((jobs * b) / total - 1e-9) : 1));
}

/**
 * Runs `parts` at once, each given the `onChild` to report the processes it starts and a signal:
 * the first part to fail (or `signal`, aborted) ends every process the parts still run and aborts
 * the parts' signal (what a part runs in this process stops on it), and its error is thrown once
 * all have settled (the others' failures, from being ended, are its consequences).
 */
async function atOnce(
  parts: ((onChild: (child: ChildProcess) => void, stop: AbortSignal) => Promise<void>)[],
  onChild?: (child: ChildProcess) => void,
  signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted();
  const live = new Set<ChildProcess>();
  const stop = new AbortController();
  const track = (child: ChildProcess) => {
    live.add(child);
    child.once('close', () => live.delete(child));
    onChild?.(child);
  };
  let first: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    if (first) return;
    first = { error };
    for (const child of live) child.kill();
    // What runs in this process (a split table's COPY sessions) stops too.
    stop.abort(error);
  };
  const outer = () => fail(signal?.reason);
  signal?.addEventListener('abort', outer, { once: true });
  try {
    await Promise.allSettled(parts.map((part) => part(track, stop.signal).catch(fail)));
  } finally {
    signal?.removeEventListener('abort', outer);
  }
  if (first) throw first.error;
}

/**
 * The passes of a parallel restore, each in the archive's order, empty ones left out: everything
 * else in parallel; then, given the archive's TOC, the {@link INDEX_ATTACH} entries in one job
 * and what depends on them (directly or not: a foreign key referencing a partitioned table needs
 * its key's index attached everywhere) in parallel; last {@link RESTORED_LAST}'s, in one job.
 */
export function planRestorePasses(entries: string[], toc?: readonly ArchiveTocEntry[]): RestorePass[] {
  const attached = new Set<number>();
  const afterAttach = new Set<number>();
  if (toc) {
    for (const line of entries) if (INDEX_ATTACH.test(line)) attached.add(idOf(line));
    const dependents = new Map<number, number[]>();
    for (const e of toc) {
      for (const d of e.dependencies) dependents.set(d, [...(dependents.get(d) ?? []), e.dumpId]);
    }
    const todo = [...attached];
    while (todo.length) {
      for (const id of dependents.get(todo.pop() as number) ?? []) {
        if (!attached.has(id) && !afterAttach.has(id)) {
          afterAttach.add(id);
          todo.push(id);
        }
      }
    }
  }
  const { first, last } = splitRestoreList(entries);
  const passes: RestorePass[] = [
    { entries: first.filter((l) => !attached.has(idOf(l)) && !afterAttach.has(idOf(l))), parallel: true },
    { entries: first.filter((l) => attached.has(idOf(l))), parallel: false },
    { entries: first.filter((l) => afterAttach.has(idOf(l))), parallel: true },
    { entries: last, parallel: false },
  ];
  return passes.filter((p) => p.entries.length > 0);
}

/**
 * The two lists of a parallel restore: `first` every entry of pg_restore's `--list` but
 * {@link RESTORED_LAST}'s, `last` those; each in the archive's order.
 */
export function splitRestoreList(entries: string[]): { first: string[]; last: string[] } {
  const first: string[] = [];
  const last: string[] = [];
  for (const line of entries) (RESTORED_LAST.test(line) ? last : first).push(line);
  return { first, last };
}

/**
 * A pg_restore list (`--use-list`) of the TOC's SEQUENCE SET entries, written beside
 * `definitionsFile` (a header and TOC alone): each sequence's value, the data section's entries
 * that are not COPY data, restored from it once the tables' data is in. Undefined when there is none.
 */
export async function sequenceSetList(
  definitionsFile: string,
  toc: readonly ArchiveTocEntry[],
): Promise<string | undefined> {
  const ids = toc.filter((e) => e.desc === 'SEQUENCE SET').map((e) => e.dumpId);
  if (!ids.length) return undefined;
  // pg_restore reads a list's lines by their leading dumpId alone.
  const list = `${definitionsFile}.sequences.list`;
  await writeFile(list, ids.map((id) => `${id};\n`).join(''), { mode: 0o600 });
  return list;
}

/**
 * A restore's selection as pg_restore is given it: the selection flags (`--schema=`, `--table=`)
 * of each of the runs whose union is restored (core/postgres/restore-selection.ts,
 * `pgRestoreRuns`). pg_restore lists each archive's part of it (`--list` with each run's flags),
 * and the union is restored with `--use-list`, in the archive's order: its flags cannot say "a.orders
 * and b.customers", and a list also keeps a selected table's grants, which pg_restore's own `-t`
 * drops in a run whose list holds them but not their table (the passes of a restore).
 */
export type PgRestoreSelection = readonly (readonly string[])[];

/**
 * The lines of `pg_restore --list` of `dumpFile`: those `selection` selects, or all without one, in
 * the archive's order.
 */
export async function listedEntries(
  pgRestore: PgToolBinary,
  dumpFile: string,
  selection: PgRestoreSelection | undefined,
  env: NodeJS.ProcessEnv,
  onChild?: (child: ChildProcess) => void,
): Promise<string[]> {
  const listed = async (flags: readonly string[]) =>
    outputLines((await runPgRestore(pgRestore, [...flags, '--list', dumpFile], env, onChild)).stdout).filter(
      (line) => /^\d+;/.test(line),
    );
  const [all, ...runs] = await Promise.all([listed([]), ...(selection ?? []).map(listed)]);
  if (!selection) return all;
  const chosen = new Set(runs.flat().map(idOf));
  return all.filter((line) => chosen.has(idOf(line)));
}

/**
 * The lines of `output` (UTF-8), each a string of its own: the pieces of one string split would
 * each keep the whole (a listing of a million large objects) alive as long as any is held.
 */
function outputLines(output: Buffer): string[] {
  const lines: string[] = [];
  for (let start = 0; start <= output.length; ) {
    let end = output.indexOf(10, start);
    if (end < 0) end = output.length;
    lines.push(output.toString('utf8', start, end));
    start = end + 1;
  }
  return lines;
}

async function runPgRestore(
  pgRestore: PgToolBinary,
  args: string[],
  env: NodeJS.ProcessEnv,
  onChild?: (child: ChildProcess) => void,
): Promise<{ stdout: Buffer }> {
  const out = await runTool(pgRestore, args, { env, onChild });
  if (out.code !== 0) {
    throw new PgferryError(
      'RestoreFailed',
      `pg_restore failed (${out.code ?? out.signal}): ${firstError(out.stderr)}`,
    );
  }
  return { stdout: out.stdout };
}
