/**
 * The archive's TOC as read from its first bytes (core/postgres/archive-toc.ts, with core/postgres/archive.ts's
 * reader), against pg_restore's own reading of real archives of pg_dump 15 (format 1.14) and 17 (1.16): the same entries, the same
 * drops, the same `--schema`/`--table` selection; and an order in which partitions' indexes can be
 * dropped.
 */
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { ArchiveTocEntry } from '../../../../core/postgres/archive';
import {
  cleanableOrder,
  droppedByClean,
  readArchiveToc,
  unselectedName,
} from '../../../../core/postgres/archive-toc';
import { pgRestoreRuns } from '../../../../core/postgres/restore-selection';
import { selectionArguments } from '../../../../core/postgres/server-encodings';
import { listedEntries } from '../../../../core/postgres/tools';
import { pgTool, runTool } from '../../../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('toc');

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) =>
    c.query(`
      CREATE SCHEMA "odd ""schema""";
      CREATE TABLE "odd ""schema""".t (id serial PRIMARY KEY, v text);
      CREATE TABLE t (id integer PRIMARY KEY);
      CREATE TABLE "tåble with spaces" (id integer REFERENCES t (id));
      CREATE VIEW v AS SELECT id FROM t;
      CREATE TYPE mood AS ENUM ('ok');
      CREATE FUNCTION f(x integer, y mood) RETURNS integer LANGUAGE sql AS 'SELECT 1';
      CREATE TABLE p (id integer PRIMARY KEY) PARTITION BY RANGE (id);
      CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10) PARTITION BY RANGE (id);
      CREATE TABLE p1a PARTITION OF p1 FOR VALUES FROM (0) TO (5);
      CREATE INDEX p_v ON p (id DESC);
      COMMENT ON TABLE t IS 'a comment has no drop';`),
  );
});
afterAll(() => dropDatabase(pg, database));

async function archiveOf(major: number): Promise<Buffer> {
  const { stdout } = await runTool(pgTool('pg_dump', major), ['-Fc', '-Z0'], pg.env(database));
  return stdout;
}

async function pgRestore(major: number, archive: Buffer, args: string[]): Promise<string> {
  const file = path.join(tmpdir(), `${uniqueName('toc')}.pgdump`);
  await writeFile(file, archive);
  try {
    const { stdout } = await runTool(pgTool('pg_restore', major), [...args, file]);
    return stdout.toString('utf8');
  } finally {
    await rm(file, { force: true });
  }
}

/** The dumpIds `pg_restore --list` prints (with the selection in `args`). */
async function listedIds(major: number, archive: Buffer, args: string[] = []): Promise<number[]> {
  return (await pgRestore(major, archive, ['--list', ...args]))
    .split('\n')
    .filter((l) => /^\d+;/.test(l))
    .map((l) => Number(l.slice(0, l.indexOf(';'))));
}

/**
 * Bytes fed 7 at a time, through one buffer reused for every piece as core/file-chunks.ts reads a
 * file: every structure is split across pieces somewhere, and a piece kept past the read that
 * got it is overwritten.
 */
async function* trickle(bytes: Buffer): AsyncGenerator<Buffer> {
  const piece = Buffer.alloc(7);
  for (let i = 0; i < bytes.length; i += 7) yield piece.subarray(0, bytes.copy(piece, 0, i, i + 7));
}

describe.each([15, 17])('an archive of pg_dump %i', (major) => {
  let archive: Buffer;
  let toc: ArchiveTocEntry[];
  beforeAll(async () => {
    archive = await archiveOf(major);
    toc = await readArchiveToc(trickle(archive));
  });

  test('has the entries pg_restore lists, in its order, with their kinds', async () => {
    const listing = (await pgRestore(major, archive, ['--list'])).split('\n').filter((l) => /^\d+;/.test(l));
    const listed = toc.filter((e) => listing.some((l) => l.startsWith(`${e.dumpId};`)));
    expect(listed.map((e) => e.dumpId)).toEqual(listing.map((l) => Number(l.slice(0, l.indexOf(';')))));
    for (const [i, entry] of listed.entries()) expect(listing[i]).toContain(` ${entry.desc} `);
    expect(toc.find((e) => e.desc === 'FUNCTION')).toMatchObject({
      namespace: 'public',
      tag: 'f(integer, public.mood)',
    });
    expect(toc.find((e) => e.desc === 'TABLE' && e.namespace === 'odd "schema"')?.tag).toBe('t');
  });

  test('marks as dropped exactly the entries pg_restore --clean drops', async () => {
    const script = await pgRestore(major, archive, ['--clean', '--if-exists', '--schema-only', '--file=-']);
    const drops = script
      .slice(0, script.indexOf('\n--\n-- Name:'))
      .split('\n')
      .filter((l) => /^(DROP |ALTER )/.test(l));
    expect(droppedByClean(toc, { schemas: [], tables: [] })).toHaveLength(drops.length);
  });

  test('selects as pg_restore --schema and --table do', async () => {
    for (const selection of [
      { schemas: ['odd "schema"'], tables: [] },
      { schemas: [], tables: ['t'] },
      { schemas: ['public'], tables: ['t', 'v'] },
    ]) {
      const args = [
        ...selection.schemas.map((s) => `--schema=${s}`),
        ...selection.tables.map((t) => `--table=${t}`),
      ];
      const selected = new Set(await listedIds(major, archive, args));
      expect(droppedByClean(toc, selection).map((e) => e.dumpId)).toEqual(
        toc.filter((e) => e.dropped && e.desc !== 'DATABASE' && selected.has(e.dumpId)).map((e) => e.dumpId),
      );
    }
  });

  test('a schema-qualified --table selects what pg_restore -n schema -t name does; several, the union of theirs', async () => {
    const backup = { id: 'b', store: 'file:///s' };
    const file = path.join(tmpdir(), `${uniqueName('toc')}.pgdump`);
    await writeFile(file, archive);
    const tool = { path: pgTool('pg_restore', major), version: String(major), major };
    const inOrder = (ids: Set<number>) => toc.map((e) => e.dumpId).filter((id) => ids.has(id));
    const idsOf = (lines: string[]) => lines.map((l) => Number(l.slice(0, l.indexOf(';'))));
    try {
      const cases: [string, string, string][] = [
        ['public.t', 'public', 't'],
        ['"odd ""schema""".t', 'odd "schema"', 't'],
        ['"odd ""schema""".t_id_seq', 'odd "schema"', 't_id_seq'],
        ['public.v', 'public', 'v'],
        ['public."tåble with spaces"', 'public', 'tåble with spaces'],
        ['public.p1a', 'public', 'p1a'],
        ['public.t_id_seq', 'public', 't_id_seq'],
        ['"odd ""schema""".v', 'odd "schema"', 'v'],
        ['public.T', 'public', 'T'],
        ['public.f', 'public', 'f'],
      ];
      const all = new Set<number>();
      for (const [written, schema, name] of cases) {
        const selected = new Set(await listedIds(major, archive, [`--schema=${schema}`, `--table=${name}`]));
        for (const id of selected) all.add(id);
        const selection = { schemas: [], tables: [written] };
        expect({ written, dropped: droppedByClean(toc, selection).map((e) => e.dumpId) }).toEqual({
          written,
          dropped: toc.filter((e) => e.dropped && selected.has(e.dumpId)).map((e) => e.dumpId),
        });
        expect({ written, selects: unselectedName(toc, selection, backup) === undefined }).toEqual({
          written,
          selects: selected.size > 0,
        });
        const runs = pgRestoreRuns(selection).map((run) => selectionArguments('UTF8', run));
        expect({ written, listed: idsOf(await listedEntries(tool, file, runs, {})) }).toEqual({
          written,
          listed: inOrder(selected),
        });
      }
      // Every name at once: what each selects, together (no more: pg_restore's flags would mix them).
      const selection = { schemas: [], tables: cases.map(([written]) => written) };
      const runs = pgRestoreRuns(selection).map((run) => selectionArguments('UTF8', run));
      expect(runs.length).toBe(2);
      expect(idsOf(await listedEntries(tool, file, runs, {}))).toEqual(inOrder(all));
      expect(droppedByClean(toc, selection).map((e) => e.dumpId)).toEqual(
        toc.filter((e) => e.dropped && all.has(e.dumpId)).map((e) => e.dumpId),
      );
    } finally {
      await rm(file, { force: true });
    }
  });

  test('a --schema or --table name selects nothing exactly when pg_restore -n/-t with it lists nothing (but a schema held whole)', async () => {
    const backup = { id: 'b', store: 'file:///s' };
    const schemas = ['odd "schema"', 'public', 'Public', 'odd', 'pg_catalog', 'nosuch'];
    const tables = [
      't',
      'v',
      'T',
      'p',
      'p1',
      'p1a',
      't_id_seq',
      'tåble with spaces',
      'f',
      'mood',
      'p_v',
      'odd "schema".t',
      'x',
    ];
    const selections = [
      ...schemas.map((s) => ({ schemas: [s], tables: [] })),
      ...tables.map((t) => ({ schemas: [], tables: [t] })),
      { schemas: ['public'], tables: ['t_id_seq'] },
      { schemas: ['odd "schema"'], tables: ['t_id_seq'] },
      { schemas: ['odd "schema"'], tables: ['v'] },
    ];
    for (const selection of selections) {
      const args = [
        ...selection.schemas.map((s) => `--schema=${s}`),
        ...selection.tables.map((t) => `--table=${t}`),
      ];
      const listed = (await listedIds(major, archive, args)).length > 0;
      // A schema the archive creates is held even with nothing in it: the restore creates it.
      const created =
        selection.tables.length === 0 &&
        toc.some((e) => e.desc === 'SCHEMA' && e.tag === selection.schemas[0]);
      expect({ ...selection, selects: unselectedName(toc, selection, backup) === undefined }).toEqual({
        ...selection,
        selects: listed || created,
      });
    }
  });

  test('orders partitions’ indexes before their parents’, at every level', () => {
    const order = cleanableOrder(
      toc.map((e) => e.dumpId),
      toc,
    );
    const at = (desc: string, tag: string) =>
      order.indexOf(toc.find((e) => e.desc === desc && e.tag === tag)?.dumpId ?? -1);
    expect(at('CONSTRAINT', 'p1a p1a_pkey')).toBeLessThan(at('CONSTRAINT', 'p1 p1_pkey'));
    expect(at('CONSTRAINT', 'p1 p1_pkey')).toBeLessThan(at('CONSTRAINT', 'p p_pkey'));
    expect(at('INDEX', 'p1a_id_idx')).toBeLessThan(at('INDEX', 'p1_id_idx'));
    expect(at('INDEX', 'p1_id_idx')).toBeLessThan(at('INDEX', 'p_v'));
    expect(at('CONSTRAINT', 'p p_pkey')).toBeLessThan(at('INDEX ATTACH', 'p1a_pkey'));
  });

  test('refuses what ends before its TOC does', async () => {
    await expect(readArchiveToc(trickle(archive.subarray(0, 200)))).rejects.toThrow(
      /the archive's table of contents cannot be read: it ends before its table of contents does/,
    );
  });
});

test('refuses what is not a custom-format archive', async () => {
  await expect(readArchiveToc(Readable.from([Buffer.from('-- plain SQL\n')]))).rejects.toThrow(
    /the archive's table of contents cannot be read: it does not start with PGDMP/,
  );
});

test('reads the TOC of a compressed archive too (only its table data cannot be counted)', async () => {
  const compressed = (await runTool(pgTool('pg_dump', 15), ['-Fc', '-Z1'], pg.env(database))).stdout;
  const toc = await readArchiveToc(trickle(compressed));
  expect(toc.find((e) => e.desc === 'TABLE DATA' && e.tag === 'tåble with spaces')).toMatchObject({
    namespace: 'public',
  });
  const listed = await listedIds(15, compressed);
  expect(toc.map((e) => e.dumpId).filter((id) => listed.includes(id))).toEqual(listed);
});
