/**
 * Running PostgreSQL's client tools (pg_dump, pg_dumpall, pg_restore, psql) as child processes,
 * by core/process.ts's one rule for what is kept of their standard error (its last
 * {@link STDERR_KEPT_CHARS} characters), from which messages quote the first error. And the
 * parallel two-pass pg_restore.
 */
import type { ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { PgferryError } from '../errors';
import { runProcess, type ToolRun } from '../process';
import type { ArchiveTocEntry } from './archive';
import { cleanableOrder, readArchiveToc } from './archive-toc';
import type { PgToolBinary } from './binaries';

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
 * `pg_restore --jobs` of `dumpFile` with `args`, in the passes of {@link planRestorePasses}, each
 * run given its part of the archive's list. With `--clean`, the list is in an order pg_restore can
 * drop (see `cleanableOrder`) and the index attachments are not set apart: each run drops what it
 * lists, and a foreign key that needs the attachments must be dropped in the run that drops its
 * tables.
 */
export async function pgRestoreParallel(
  pgRestore: PgToolBinary,
  opts: {
    args: string[];
    jobs: number;
    dumpFile: string;
    env: NodeJS.ProcessEnv;
    onChild?: (child: ChildProcess) => void;
  },
): Promise<void> {
  const { args, jobs, dumpFile, env, onChild } = opts;
  const run = (more: string[]) => runPgRestore(pgRestore, [...more, dumpFile], env, onChild);
  const clean = args.includes('--clean');
  const inOneRun = jobs === 1 || args.includes('--no-privileges');
  if (inOneRun && !clean) {
    await run([...args, `--jobs=${jobs}`]);
    return;
  }
  let entries = (await run(['--list'])).stdout.split('\n').filter((line) => /^\d+;/.test(line));
  const attaches = !clean && entries.some((line) => INDEX_ATTACH.test(line));
  const toc = clean || attaches ? await readArchiveToc(createReadStream(dumpFile)) : undefined;
  if (clean && toc) {
    const line = new Map(entries.map((l) => [Number(l.slice(0, l.indexOf(';'))), l]));
    entries = cleanableOrder([...line.keys()], toc).map((id) => line.get(id) as string);
  }
  const passes = inOneRun
    ? [{ entries, parallel: true }]
    : planRestorePasses(entries, attaches ? toc : undefined);
  const listFile = (i: number) => `${dumpFile}.pass${i}.list`;
  try {
    for (const [i, pass] of passes.entries()) {
      await writeFile(listFile(i), `${pass.entries.join('\n')}\n`);
      await run([...args, ...(pass.parallel ? [`--jobs=${jobs}`] : []), `--use-list=${listFile(i)}`]);
    }
  } finally {
    await Promise.all(passes.map((_, i) => rm(listFile(i), { force: true })));
  }
}

/**
 * A parallel backup's restore (`backup --jobs`): the main archive's pre-data section; then, at
 * once, its data section and every data-only archive, the jobs shared among them (at least one
 * each); then its post-data section (indexes, constraints, what needs the data). Each section runs
 * in {@link pgRestoreParallel}'s passes. The first failure stops the other pg_restores. By hand:
 * `pg_restore --section=pre-data -d db dump.pgdump`, `pg_restore --data-only -d db` each
 * `table-data-N.pgdump` and `pg_restore --section=data -d db dump.pgdump` (in any order, or at
 * once), then `pg_restore --section=post-data -d db dump.pgdump`.
 */
export async function pgRestoreSections(
  pgRestore: PgToolBinary,
  opts: {
    args: string[];
    jobs: number;
    dumpFile: string;
    tableData: string[];
    env: NodeJS.ProcessEnv;
    onChild?: (child: ChildProcess) => void;
  },
): Promise<void> {
  const { args, jobs, dumpFile, tableData, env } = opts;
  const children = new Set<ChildProcess>();
  const onChild = (child: ChildProcess) => {
    children.add(child);
    child.once('close', () => children.delete(child));
    opts.onChild?.(child);
  };
  const section = (name: string, sectionJobs = jobs) =>
    pgRestoreParallel(pgRestore, {
      args: [...args, `--section=${name}`],
      jobs: sectionJobs,
      dumpFile,
      env,
      onChild,
    });
  await section('pre-data');
  const share = Math.max(1, Math.floor(jobs / (1 + tableData.length)));
  let first: { error: unknown } | undefined;
  const stopOthers = (err: unknown) => {
    if (!first) {
      first = { error: err };
      for (const child of children) child.kill('SIGTERM');
    }
    throw err;
  };
  const loads = await Promise.allSettled([
    section('data', share).catch(stopOthers),
    ...tableData.map((file) =>
      runPgRestore(pgRestore, [...args, '--data-only', `--jobs=${share}`, file], env, onChild).catch(
        stopOthers,
      ),
    ),
  ]);
  if (first || loads.some((r) => r.status === 'rejected')) throw first?.error;
  await section('post-data');
}

/**
 * The passes of a parallel restore, each in the archive's order, empty ones left out: everything
 * else in parallel; then, given the archive's TOC, the {@link INDEX_ATTACH} entries in one job
 * and what depends on them (directly or not: a foreign key referencing a partitioned table needs
 * its key's index attached everywhere) in parallel; last {@link RESTORED_LAST}'s, in one job.
 */
export function planRestorePasses(entries: string[], toc?: readonly ArchiveTocEntry[]): RestorePass[] {
  const idOf = (line: string) => Number(line.slice(0, line.indexOf(';')));
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

async function runPgRestore(
  pgRestore: PgToolBinary,
  args: string[],
  env: NodeJS.ProcessEnv,
  onChild?: (child: ChildProcess) => void,
): Promise<{ stdout: string }> {
  const out = await runTool(pgRestore, args, { env, onChild });
  if (out.code !== 0) {
    throw new PgferryError(
      'RestoreFailed',
      `pg_restore failed (${out.code ?? out.signal}): ${firstError(out.stderr)}`,
    );
  }
  return { stdout: out.stdout.toString() };
}
