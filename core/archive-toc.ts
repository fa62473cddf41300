/**
 * The table of contents of a pg_dump custom-format archive, read from the archive's first bytes —
 * what a clean restore will drop, known before the archive is downloaded. pg_dump writing to a
 * pipe (as pgferry's dumps do) puts the whole TOC at the start, before any data.
 *
 * The layout (PostgreSQL's src/bin/pg_dump/pg_backup_archiver.c, `WriteHead` and `WriteToc`, and
 * pg_backup_custom.c): "PGDMP", the format's version (major, minor, rev), intSize, offSize, format;
 * the compression (an int before 1.15, a byte from 1.15); the creation time (7 ints); the database
 * name, server version and pg_dump version (strings); then the entry count and per entry: dumpId,
 * hadDumper, tableoid, oid, tag, desc, section, defn, dropStmt, copyStmt, namespace, tablespace,
 * tableam (1.14), relkind (1.16), owner, "false" (WITH OIDS), dependencies (strings ended by
 * NULL), and the custom format's data offset (a flag byte and offSize bytes). An int is a sign
 * byte and intSize bytes, least significant first; a string an int length (-1: NULL) and its
 * bytes. Versions 1.12 (pg_dump 9.6) to 1.16 (pg_dump 17, 18) are read; others are refused.
 */
import type { Readable } from 'node:stream';
import { PgferryError } from './errors';

/** One entry of the archive's TOC (the fields a clean restore needs). */
export interface ArchiveEntry {
  dumpId: number;
  /** Its kind as pg_dump names it: `TABLE`, `VIEW`, `FK CONSTRAINT`, `TABLE DATA`, … */
  desc: string;
  /** Its schema; null for objects outside schemas (schemas, extensions, …). */
  namespace: string | null;
  /** Its name: for a function `f(integer, text)`, for a constraint or trigger `table name`. */
  tag: string;
  /** Whether `pg_restore --clean` issues a DROP for it (its drop statement is not empty). */
  dropped: boolean;
  /** The dumpIds of the entries it depends on. */
  dependencies: number[];
}

const version = (major: number, minor: number, rev = 0) => (major * 256 + minor) * 256 + rev;
const K_VERS_1_12 = version(1, 12);
const K_VERS_1_14 = version(1, 14);
const K_VERS_1_15 = version(1, 15);
const K_VERS_1_16 = version(1, 16);
const K_VERS_MAX = version(1, 16, 255);
const MAGIC = 'PGDMP';

class NeedMore extends Error {}
const NEED_MORE = new NeedMore();

class Cursor {
  intSize = 4;
  constructor(
    readonly buf: Buffer,
    public pos = 0,
  ) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw NEED_MORE;
    return this.buf[this.pos++];
  }

  int(): number {
    if (this.pos + 1 + this.intSize > this.buf.length) throw NEED_MORE;
    let value = 0;
    for (let i = this.intSize; i >= 1; i--) value = value * 256 + this.buf[this.pos + i];
    const negative = this.buf[this.pos] !== 0;
    this.pos += 1 + this.intSize;
    return negative ? -value : value;
  }

  str(): string | null {
    const length = this.int();
    if (length < 0) return null;
    if (this.pos + length > this.buf.length) throw NEED_MORE;
    const value = this.buf.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  skip(bytes: number): void {
    if (this.pos + bytes > this.buf.length) throw NEED_MORE;
    this.pos += bytes;
  }
}

function unreadable(detail: string): PgferryError {
  return new PgferryError('BackupCorrupt', `the archive's table of contents cannot be read: ${detail}`);
}

/**
 * Reads the TOC from the start of a custom-format archive, consuming no more of `input` than it
 * needs (the stream is destroyed once the TOC is read). Throws `BackupCorrupt` on bytes that are
 * not such an archive, or that end before the TOC does, and on format versions it does not know.
 */
export async function readArchiveToc(input: Readable): Promise<ArchiveEntry[]> {
  let pending: Buffer = Buffer.alloc(0);
  const cursor = { intSize: 4, offSize: 8, version: 0 };
  let remaining: number | undefined;
  let headerRead = false;
  const entries: ArchiveEntry[] = [];
  for await (const chunk of input) {
    pending = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
    const c = new Cursor(pending);
    c.intSize = cursor.intSize;
    let start = 0;
    try {
      if (!headerRead) {
        Object.assign(cursor, readHeader(c));
        c.intSize = cursor.intSize;
        headerRead = true;
        start = c.pos;
      }
      if (remaining === undefined) {
        remaining = c.int();
        if (remaining < 0) throw unreadable(`${remaining} entries`);
        start = c.pos;
      }
      while (remaining > 0) {
        entries.push(readEntry(c, cursor.version, cursor.offSize));
        remaining--;
        start = c.pos;
      }
      return entries;
    } catch (err) {
      if (err !== NEED_MORE) throw err;
      pending = pending.subarray(start);
    }
  }
  throw unreadable('it ends before its table of contents does');
}

function readHeader(c: Cursor): { intSize: number; offSize: number; version: number } {
  for (const ch of MAGIC) {
    if (c.byte() !== ch.charCodeAt(0)) throw unreadable('it is not a pg_dump custom-format archive');
  }
  const major = c.byte();
  const minor = c.byte();
  const rev = major > 1 || (major === 1 && minor > 0) ? c.byte() : 0;
  const v = version(major, minor, rev);
  if (v < K_VERS_1_12 || v > K_VERS_MAX) {
    throw unreadable(`its format ${major}.${minor}.${rev} is not one of 1.12 to 1.16 (pg_dump 9.6 to 18)`);
  }
  c.intSize = c.byte();
  const offSize = c.byte();
  if (c.intSize < 1 || c.intSize > 8 || offSize < 1 || offSize > 16)
    throw unreadable(`integers of ${c.intSize} bytes, offsets of ${offSize}`);
  if (c.byte() !== 1) throw unreadable('it is not a custom-format archive');
  if (v >= K_VERS_1_15) c.byte();
  else c.int();
  for (let i = 0; i < 7; i++) c.int();
  c.str();
  c.str();
  c.str();
  return { intSize: c.intSize, offSize, version: v };
}

function readEntry(c: Cursor, v: number, offSize: number): ArchiveEntry {
  const dumpId = c.int();
  if (dumpId <= 0) throw unreadable(`an entry with id ${dumpId}`);
  c.int(); // hadDumper
  c.str(); // tableoid
  c.str(); // oid
  const tag = c.str() ?? '';
  const desc = c.str() ?? '';
  c.int(); // section
  c.str(); // defn
  const dropStmt = c.str();
  c.str(); // copyStmt
  const namespace = c.str();
  c.str(); // tablespace
  if (v >= K_VERS_1_14) c.str(); // tableam
  if (v >= K_VERS_1_16) c.int(); // relkind
  c.str(); // owner
  c.str(); // WITH OIDS
  const dependencies: number[] = [];
  for (let dep = c.str(); dep !== null; dep = c.str()) dependencies.push(Number(dep));
  c.skip(1 + offSize);
  return { dumpId, desc, namespace: namespace || null, tag, dropped: Boolean(dropStmt), dependencies };
}

/** The relation kinds `pg_restore --table` selects (as pg_restore's `_tocEntryRequired`). */
const TABLE_LIKE = new Set([
  'TABLE',
  'TABLE DATA',
  'VIEW',
  'FOREIGN TABLE',
  'MATERIALIZED VIEW',
  'MATERIALIZED VIEW DATA',
  'SEQUENCE',
  'SEQUENCE SET',
]);

/**
 * The entries `pg_restore --clean` drops given `--schema`/`--table` selections, as pg_restore
 * selects them: with schemas, only entries in one of them; with tables, only relations of those
 * names (and nothing else); of those, the ones with a drop statement.
 */
export function droppedByClean(
  toc: readonly ArchiveEntry[],
  selection: { schemas: readonly string[]; tables: readonly string[] },
): ArchiveEntry[] {
  return toc.filter((e) => {
    if (!e.dropped || e.desc === 'DATABASE') return false;
    if (selection.schemas.length && (e.namespace === null || !selection.schemas.includes(e.namespace)))
      return false;
    if (selection.tables.length && (!TABLE_LIKE.has(e.desc) || !selection.tables.includes(e.tag)))
      return false;
    return true;
  });
}

/**
 * `ids` (an archive's entries, in the order pg_restore is to take them) reordered so that
 * `pg_restore --clean` can drop them: it drops in reverse order, and a partition's index or
 * primary key, attached to its parent's (`INDEX ATTACH`), cannot be dropped on its own ("cannot
 * drop inherited constraint") — but goes with its parent's. So each such child entry is placed
 * before its parent's (created first, dropped after, when it is already gone: `IF EXISTS`).
 * pg_dump puts them after their parents, so every clean restore of a database with partitioned
 * tables that have a primary key or indexes failed midway.
 */
export function cleanableOrder(ids: readonly number[], toc: readonly ArchiveEntry[]): number[] {
  const byId = new Map(toc.map((e) => [e.dumpId, e]));
  const pairs: { parent: number; child: number }[] = [];
  for (const attach of toc) {
    if (attach.desc !== 'INDEX ATTACH') continue;
    // It depends on both indexes (or the constraints they back), and on their tables.
    const indexes = [...new Set(attach.dependencies)]
      .map((id) => byId.get(id))
      .filter((e): e is ArchiveEntry => e?.desc === 'CONSTRAINT' || e?.desc === 'INDEX');
    const isChild = (e: ArchiveEntry) =>
      e.namespace === attach.namespace && (e.tag === attach.tag || e.tag.endsWith(` ${attach.tag}`));
    const children = indexes.filter(isChild);
    if (children.length !== 1) continue;
    for (const parent of indexes) {
      if (parent !== children[0]) pairs.push({ parent: parent.dumpId, child: children[0].dumpId });
    }
  }
  const order = [...ids];
  // Each move puts a child before its parent; deeper levels settle within as many passes.
  for (let pass = 0, moved = true; moved && pass <= pairs.length; pass++) {
    moved = false;
    for (const { parent, child } of pairs) {
      const p = order.indexOf(parent);
      const c = order.indexOf(child);
      if (p < 0 || c < 0 || c < p) continue;
      order.splice(c, 1);
      order.splice(p, 0, child);
      moved = true;
    }
  }
  return order;
}
