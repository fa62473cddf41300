/**
 * A clean restore's drops, run before anything is created. `pg_restore --clean` drops what it
 * will restore at the start of its run, in the reverse of its list's order (foreign keys and
 * indexes before their tables, tables before the functions and types they use). A restore that
 * runs in several pg_restore runs — a parallel backup's sections (`pgRestoreSections`) — cannot
 * let each run drop its own part: the pre-data run's `DROP TABLE` would meet the post-data
 * section's foreign keys, still in place. So the drops run first, all of them, as pg_restore writes
 * them (its own text, `--if-exists` included), and the sections then restore as into an emptied
 * database.
 */
import type { ChildProcess } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { PgferryError } from '../errors';
import { fileChunks } from '../file-chunks';
import { runProcess } from '../process';
import { cleanableOrder, readArchiveToc } from './archive-toc';
import type { PgToolBinary } from './binaries';
import { firstError, listedEntries, type PgRestoreSelection } from './tools';

/** pg_restore's options that do not apply to a script of the drops (or that this module sets). */
const NOT_FOR_THE_SCRIPT = /^--(dbname|exit-on-error|jobs|clean|if-exists|section|use-list|file)\b/;

/** psql's meta-commands that pg_restore 17.6/16.10/15.14/14.19 and later put around a script. */
const RESTRICT = /^\\(un)?restrict \S+$/;

/**
 * The drops of `withClean` (pg_restore's script of a list with `--clean`), with the script's
 * header, given `without` (the same list's script without `--clean`): pg_restore writes the header,
 * then the drops, then what `without` holds after its header. The `\restrict` lines' keys differ
 * from run to run and are compared as equal. `SET lock_timeout = 0;` is left out of the header, so
 * that the session's own `lock_timeout` (a clean restore's, see restore-backup.ts) bounds the
 * drops' waits. Undefined when there is nothing to drop; throws when the scripts do not have that
 * shape.
 */
export function dropsOf(withClean: string, without: string): string | undefined {
  const a = withClean.split('\n');
  const b = without.split('\n');
  const same = (x: string, y: string) => x === y || (RESTRICT.test(x) && RESTRICT.test(y));
  let prefix = 0;
  while (prefix < b.length && same(a[prefix], b[prefix])) prefix++;
  let suffix = 0;
  const most = Math.min(a.length, b.length) - prefix;
  while (suffix < most && same(a[a.length - 1 - suffix], b[b.length - 1 - suffix])) suffix++;
  if (prefix + suffix !== b.length) {
    throw new PgferryError('RestoreFailed', "pg_restore's script of the drops has an unexpected shape");
  }
  const drops = a.slice(prefix, a.length - suffix);
  if (!drops.some((line) => line.trim() && !line.startsWith('--'))) return undefined;
  const header = a.slice(0, prefix).filter((line) => line.trim() !== 'SET lock_timeout = 0;');
  return `${[...header, ...drops].join('\n')}\n`;
}

/**
 * Drops what `pg_restore --clean` of `dumpFile` with `args` (`--no-owner`, …, a selection:
 * `--schema`, `--table`) would drop of what `selection` selects (all without it), in the order it
 * would (the list in `cleanableOrder`), through psql on the target named by `args`' `--dbname`,
 * stopping at the first error. Nothing is created.
 */
export async function dropFirst(
  pgRestore: PgToolBinary,
  psql: PgToolBinary,
  opts: {
    args: string[];
    dumpFile: string;
    env: NodeJS.ProcessEnv;
    onChild?: (child: ChildProcess) => void;
    selection?: PgRestoreSelection;
  },
): Promise<void> {
  const { dumpFile, env, onChild } = opts;
  const dbname = opts.args.find((a) => a.startsWith('--dbname='));
  const scriptArgs = opts.args.filter((a) => !NOT_FOR_THE_SCRIPT.test(a));
  const restore = async (more: string[]) => {
    const out = await runProcess(pgRestore.path, [...more, dumpFile], { env, onChild });
    if (out.code !== 0) {
      throw new PgferryError(
        'RestoreFailed',
        `pg_restore failed (${out.code ?? out.signal}): ${firstError(out.stderr)}`,
      );
    }
    // Its bytes as they are (one character each): the script is in the archive's encoding.
    return out.stdout.toString('latin1');
  };
  const lines = await listedEntries(pgRestore, dumpFile, opts.selection, env, onChild);
  const toc = await readArchiveToc(fileChunks(dumpFile));
  const dropped = new Set(toc.filter((e) => e.dropped).map((e) => e.dumpId));
  const byId = new Map(lines.map((l) => [Number(l.slice(0, l.indexOf(';'))), l]));
  // Only what has a drop statement: the script leaves out the data, whose entries drop nothing.
  const order = cleanableOrder([...byId.keys()], toc).filter((id) => dropped.has(id));
  if (order.length === 0) return;
  const list = `${dumpFile}.drops.list`;
  await writeFile(list, `${order.map((id) => byId.get(id)).join('\n')}\n`);
  try {
    const script = dropsOf(
      await restore([...scriptArgs, '--clean', '--if-exists', `--use-list=${list}`, '--file=-']),
      await restore([...scriptArgs, `--use-list=${list}`, '--file=-']),
    );
    if (script === undefined) return;
    const out = await runProcess(
      psql.path,
      ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--no-password', ...(dbname ? [dbname] : [])],
      { env, onChild, input: Buffer.from(script, 'latin1'), ignoreStdout: true },
    );
    if (out.code !== 0) {
      throw new PgferryError(
        'RestoreFailed',
        `dropping the backup's objects before restoring them failed (psql ${out.code ?? out.signal}): ${firstError(out.stderr)}`,
      );
    }
  } finally {
    await rm(list, { force: true });
  }
}
