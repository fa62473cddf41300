/**
 * The archive reader against real archives: pg_dump 15 (format 1.14) and 17 (format 1.16) dumping
 * a database with the cases that could fool a row count — values holding newlines, backslashes
 * and COPY's own end marker, empty tables, partitions, large objects (whose data is not rows),
 * thousands of tables — fed in pieces of every size, so that every structure is split somewhere.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ArchiveRowCounter, ArchiveScanner, type TableDataRows } from '../../../../core/postgres/archive';
import { namesNotExact } from '../../../../core/postgres/copy-stream';
import { pgTool, runTool } from '../../../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('archive_rows');
const MANY_TABLES = 2000;

interface SourceTable {
  oid: number;
  schema: string;
  name: string;
  rows: number;
}
let source: SourceTable[];
const archives = new Map<number, Buffer>();

/** pg_dump's output through a pipe, as the runner reads it (to a file, pg_dump 17 appends its TOC again). */
function pgDump(major: number, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(pgTool('pg_dump', major), [...args, database], {
      env: { PATH: process.env.PATH, ...pg.env(database) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`pg_dump ${major} failed: ${err}`)),
    );
  });
}

function scan(archive: Buffer, pieceBytes: number): ArchiveScanner {
  const scanner = new ArchiveScanner();
  for (let i = 0; i < archive.length; i += pieceBytes) scanner.write(archive.subarray(i, i + pieceBytes));
  return scanner;
}

const byName = (tables: { schema: string; name: string; rows: number }[]) =>
  tables.map((t) => `${t.schema}.${t.name}=${t.rows}`).sort();

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, async (c) => {
    await c.query(`
      CREATE TABLE awkward (id int, v text);
      INSERT INTO awkward VALUES
        (1, E'two\\nlines'), (2, E'back\\\\slash'), (3, E'\\\\.'), (4, E'\\\\.\\n'), (5, E'\\n\\\\.\\n'),
        (6, E'tab\\there'), (7, E'cr\\rlf\\r\\n'), (8, ''), (9, NULL), (10, E'\\\\N');
      INSERT INTO awkward SELECT g, repeat(E'x\\n', g % 7) FROM generate_series(11, 1000) g;
      CREATE TABLE empty_table (id int);
      CREATE TABLE big (id int, payload text);
      INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
      CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
      CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
      CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (1000);
      CREATE TABLE parted_empty PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
      INSERT INTO parted SELECT g, E'p\\n' || g FROM generate_series(0, 999) g;
      CREATE SCHEMA "Sch ema";
      CREATE UNLOGGED TABLE "Sch ema"."tåble ""quoted""" (v text);
      INSERT INTO "Sch ema"."tåble ""quoted""" VALUES ('ü'), (E'\\\\.');
      CREATE MATERIALIZED VIEW mv AS SELECT * FROM awkward;
      CREATE SEQUENCE seq;
      SELECT lo_from_bytea(0, convert_to(repeat(E'large\\nobject\\n', 50000), 'UTF8'));
      SELECT lo_from_bytea(0, '\\x0a0a0a'::bytea);
      SELECT lo_from_bytea(0, ''::bytea);
      DO $$ BEGIN
        FOR i IN 1..${MANY_TABLES} LOOP
          EXECUTE format('CREATE TABLE many_%s (id int)', i);
          IF i % 3 <> 0 THEN EXECUTE format('INSERT INTO many_%s SELECT generate_series(1, %s)', i, i % 5); END IF;
        END LOOP;
      END $$;`);
    const { rows } = await c.query<{ oid: string; schema: string; name: string; rows: string }>(`
      SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name,
             (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM ONLY %I.%I', n.nspname, c.relname),
                                                  false, true, '')))[1]::text AS rows
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`);
    source = rows.map((r) => ({ oid: Number(r.oid), schema: r.schema, name: r.name, rows: Number(r.rows) }));
  });
  for (const major of [15, 17]) archives.set(major, await pgDump(major, ['-Fc', '-Z0']));
}, 300_000);

afterAll(() => dropDatabase(pg, database));

describe.each([
  { major: 15, version: '1.14.0' },
  { major: 17, version: '1.16.0' },
])('an archive of pg_dump $major (format $version)', ({ major, version }) => {
  const archive = () => archives.get(major) as Buffer;

  test('its header is read', () => {
    const scanner = scan(archive(), 65_536);
    expect(scanner.header).toMatchObject({ version, intSize: 4, offSize: 8, compression: 'none', database });
    expect(scanner.header?.pgDumpVersion).toMatch(new RegExp(`^${major}\\.`));
  });

  test.each([5, 61, 4096, 65_536, Number.MAX_SAFE_INTEGER])(
    "every table's rows equal the source's, read %i bytes at a time",
    (pieceBytes) => {
      const tables = scan(archive(), pieceBytes).tables();
      expect(tables).toHaveLength(source.length);
      expect(byName(tables)).toEqual(byName(source));
      // Each TABLE DATA entry names its table by oid.
      const oids = new Map(source.map((t) => [t.oid, `${t.schema}.${t.name}`]));
      expect(tables.every((t: TableDataRows) => oids.get(t.oid) === `${t.schema}.${t.name}`)).toBe(true);
    },
  );

  test('the awkward values, the empty tables and the partitions are counted exactly', () => {
    const tables = scan(archive(), 4096).tables();
    const rows = (name: string) => tables.find((t) => t.name === name)?.rows;
    expect(rows('awkward')).toBe(1000);
    expect(rows('empty_table')).toBe(0);
    expect(rows('parted_empty')).toBe(0);
    expect(rows('parted_low')).toBe(100);
    expect(rows('parted_high')).toBe(900);
    expect(rows('tåble "quoted"')).toBe(2);
    expect(rows('big')).toBe(200_000);
    // Partitioned parents and materialized views carry no data of their own.
    expect(rows('parted')).toBeUndefined();
    expect(rows('mv')).toBeUndefined();
  });

  test('an archive cut short is not mistaken for a complete one', () => {
    const whole = archive();
    for (const end of [10, Math.floor(whole.length / 2), whole.length - 1]) {
      const scanner = scan(whole.subarray(0, end), 65_536);
      expect(scanner.complete).toBe(false);
      expect(() => scanner.tables()).toThrow(/ended before/);
    }
  });

  test('its header and TOC alone are an archive pg_restore reads', async () => {
    const pieces: Buffer[] = [];
    let last = false;
    const counter = new ArchiveRowCounter({
      onTocBytes: (bytes, isLast) => {
        pieces.push(Buffer.from(bytes));
        last = isLast;
      },
    });
    const passed: Buffer[] = [];
    counter.on('data', (d: Buffer) => passed.push(d));
    const whole = archive();
    for (let i = 0; i < whole.length; i += 1000) counter.write(whole.subarray(i, i + 1000));
    counter.end();
    await new Promise((resolve) => counter.on('end', resolve));
    expect(Buffer.concat(passed).equals(whole)).toBe(true);
    expect(last).toBe(true);
    const definitions = Buffer.concat(pieces);
    expect(definitions.length).toBe(counter.scanner.tocEnd);
    const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-archive-'));
    writeFileSync(path.join(dir, 'full.pgdump'), whole);
    writeFileSync(path.join(dir, 'definitions.pgdump'), definitions);
    const list = async (file: string) =>
      (await runTool(pgTool('pg_restore', major), ['--list', path.join(dir, file)])).stdout
        .toString()
        .split('\n')
        .filter((line) => /^\d+;/.test(line));
    expect(await list('definitions.pgdump')).toEqual(await list('full.pgdump'));
  });

  test('its header and TOC are handed whole even when the bytes right after them, in the same piece, fail', async () => {
    const damaged = Buffer.from(archive());
    const tocEnd = scan(damaged, 65_536).tocEnd as number;
    damaged[tocEnd] = 9; // the first data block's type
    const pieces: Buffer[] = [];
    let last = false;
    let told = false;
    const counter = new ArchiveRowCounter({
      onToc: () => {
        told = true;
      },
      onTocBytes: (bytes, isLast) => {
        pieces.push(Buffer.from(bytes));
        last = isLast;
      },
    });
    counter.resume();
    const failed = new Promise<Error>((resolve) => counter.on('error', resolve));
    counter.end(damaged);
    expect((await failed).message).toMatch(/a data block of unknown type 9/);
    expect(told).toBe(true);
    expect(last).toBe(true);
    expect(Buffer.concat(pieces).equals(damaged.subarray(0, tocEnd))).toBe(true);
  });
});

test('a compressed archive is refused: its chunks are not COPY text', async () => {
  const compressed = await pgDump(15, ['-Fc', '-Z1', '--schema=public', '--table=awkward']);
  expect(() => scan(compressed, 4096)).toThrow(
    /compressed \(gzip \(level 1\)\); rows can be counted only in a -Z0 dump/,
  );
});

test('what is not a custom-format archive is refused at once', () => {
  const scanner = new ArchiveScanner();
  expect(() => scanner.write(Buffer.from('--\n-- PostgreSQL database dump\n'))).toThrow(
    /does not start with PGDMP/,
  );
  const future = Buffer.from(archives.get(17) as Buffer);
  future[6] = 99; // format 1.99
  expect(() => scan(future, 4096)).toThrow(/format 1\.99\.0 is newer than this pgferry reads/);
});

describe("a non-UTF8 archive's names", () => {
  const db = uniqueName('archive_win1252');
  afterAll(() => dropDatabase(pg, db));

  test('are decoded by its encoding; one with no exact Unicode equivalent is marked, never sent', async () => {
    await withClient(pg, 'postgres', (c) =>
      c.query(`CREATE DATABASE "${db}" TEMPLATE template0 ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C'`),
    );
    // 0x81 is no character in PostgreSQL's WIN1252 (WHATWG's has a C1 control): the name is made of
    // the database's own bytes, which no UTF-8 session can send.
    await withClient(pg, db, (c) =>
      c.query(`CREATE SCHEMA "sch€ma"; CREATE TABLE "sch€ma"."t€" ("c€" int); INSERT INTO "sch€ma"."t€" VALUES (1), (2);
               DO $$ BEGIN EXECUTE format('CREATE TABLE public.%I (c int)', convert_from('\\x7481'::bytea, 'WIN1252')); END $$`),
    );
    const archive = execFileSync(pgTool('pg_dump', 17), ['-Fc', '-Z0', db], {
      env: { PATH: process.env.PATH, ...pg.env(db) },
      maxBuffer: 1 << 28,
    });
    const scanner = scan(archive, 7);
    expect(scanner.encoding).toBe('WIN1252');
    const euro = scanner.toc.find((e) => e.desc === 'TABLE DATA' && e.tag === 't€');
    expect(euro).toMatchObject({ namespace: 'sch€ma', copyStmt: 'COPY "sch€ma"."t€" ("c€") FROM stdin;\n' });
    expect(euro?.undecodable).toBeUndefined();
    expect(scanner.toc.filter((e) => e.undecodable).map((e) => `${e.desc} ${e.tag}`)).toEqual([
      'TABLE t\ufffd',
      'TABLE DATA t\ufffd',
    ]);
    expect(namesNotExact(scanner.toc)).toBe(
      'TABLE public.t\ufffd has a name with no exact Unicode equivalent in its encoding WIN1252',
    );
    expect(byName(scanner.tables())).toEqual(['public.t\ufffd=0', 'sch€ma.t€=2']);
  });
});
