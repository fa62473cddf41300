/**
 * A restore of an archive with many large objects (pg_dump 15: one `BLOB` entry each) by
 * `pgRestoreParallel`: the objects are created in batches of core/postgres/large-objects.ts, not
 * one transaction per statement as pg_restore runs them — the target commits fewer transactions
 * than there are objects — and arrive as they were: contents, owners (two roles), a comment and a
 * grant. So does a parallel backup's restore (`pgRestoreArchive` of a main archive and a side
 * archive with the table's data), and a clean restore over a database that holds them already
 * (they are dropped first). A migration's pre-data (`pgRestorePreData`) creates them in batches
 * too, and arrives as pg_restore's own pre-data run does.
 */
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Client } from 'pg';
import { readArchiveToc } from '../../../../core/postgres/archive-toc';
import { pgRestoreArchive, pgRestoreParallel, pgRestorePreData } from '../../../../core/postgres/tools';
import { pgTool, runTool } from '../../../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../../../support/env';
import { commitsIn, largeObjectRows, largeObjectsSeed } from '../../../support/large-objects';

const pg = testEnv().server(15);
const database = uniqueName('lobs_src');
const target = uniqueName('lobs_to');
const sectioned = uniqueName('lobs_sections');
const preData = uniqueName('lobs_pre_data');
const preDataByPgRestore = uniqueName('lobs_pre_data_ref');
const owner = uniqueName('lo_owner');
const reader = uniqueName('lo_reader');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-lobs-'));
const dump = path.join(dir, 'db.dump');
/** As `backup --jobs 2` writes them: the main archive without docs' rows, a side archive with them. */
const main = path.join(dir, 'main.dump');
const side = path.join(dir, 'table-data-1.dump');
const OBJECTS = 2500;
const toolEnv = () => ({
  PATH: process.env.PATH,
  PGHOST: pg.host,
  PGPORT: String(pg.port),
  PGUSER: pg.user,
  PGPASSWORD: pg.password,
});

beforeAll(async () => {
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE ROLE ${quoteIdent(owner)}; CREATE ROLE ${quoteIdent(reader)}`),
  );
  await createSeededDatabase(pg, database, largeObjectsSeed(OBJECTS, owner, reader));
  const pgDump = (file: string, ...args: string[]) =>
    runTool(
      pgTool('pg_dump', 15),
      ['-Fc', '-Z0', '-f', file, ...args, '-h', pg.host, '-p', String(pg.port), '-U', pg.user, database],
      { PGPASSWORD: pg.password },
    );
  await pgDump(dump);
  await pgDump(main, '--exclude-table-data=docs');
  await pgDump(side, '--data-only', '--table=docs');
}, 120_000);

afterAll(async () => {
  await dropDatabase(pg, database);
  await dropDatabase(pg, target);
  await dropDatabase(pg, sectioned);
  await dropDatabase(pg, preData);
  await dropDatabase(pg, preDataByPgRestore);
  await withClient(pg, 'postgres', (c) =>
    c.query(`DROP ROLE ${quoteIdent(owner)}; DROP ROLE ${quoteIdent(reader)}`),
  );
  rmSync(dir, { recursive: true, force: true });
});

/** New sessions on `name`, as a restore's COPY and large-object sessions connect. */
function connectTo(name: string) {
  return async () => {
    const { Client: PgClient } = await import('pg');
    const client: Client = new PgClient(pg.clientConfig(name));
    await client.connect();
    return client;
  };
}

test('large objects are created in batches, with their contents, owners, comment and grant', async () => {
  await withClient(pg, 'postgres', (c) => c.query(`CREATE DATABASE ${quoteIdent(target)}`));
  const pgRestore = { path: pgTool('pg_restore', 15), version: '15', major: 15 };
  await pgRestoreParallel(pgRestore, {
    args: ['--exit-on-error', '--no-password', `--dbname=${target}`],
    jobs: 2,
    dumpFile: dump,
    env: toolEnv(),
    split: { connect: connectTo(target) },
    afterPreData: async () => undefined,
  });
  const commits = await commitsIn(pg, target);
  const expected = await largeObjectRows(pg, database);
  expect(expected).toHaveLength(OBJECTS);
  expect(expected.filter((o) => o.owner === owner)).toHaveLength(OBJECTS / 2);
  expect(expected.filter((o) => o.comment === 'seventh')).toHaveLength(1);
  expect(expected.filter((o) => o.acl?.includes(reader))).toHaveLength(1);
  expect(await largeObjectRows(pg, target)).toEqual(expected);
  // pg_restore alone commits each object's lo_create and ALTER LARGE OBJECT … OWNER apart.
  expect(commits).toBeLessThan(OBJECTS);
}, 300_000);

test("a parallel backup's restore creates the main archive's large objects in batches too; a clean restore over them drops them first", async () => {
  await withClient(pg, 'postgres', (c) => c.query(`CREATE DATABASE ${quoteIdent(sectioned)}`));
  const pgRestore = { path: pgTool('pg_restore', 15), version: '15', major: 15 };
  const psql = { path: pgTool('psql', 15), version: '15', major: 15 };
  const restore = (...more: string[]) =>
    pgRestoreArchive(pgRestore, {
      args: [...more, '--exit-on-error', '--no-password', `--dbname=${sectioned}`],
      jobs: 2,
      dumpFile: main,
      tableData: [side],
      env: toolEnv(),
      psql,
      split: { connect: connectTo(sectioned) },
    });
  await restore();
  const commits = await commitsIn(pg, sectioned);
  const expected = await largeObjectRows(pg, database);
  expect(await largeObjectRows(pg, sectioned)).toEqual(expected);
  expect(commits).toBeLessThan(OBJECTS);
  // Over a database that holds every one of them (and their table): dropped, then created again.
  await restore('--clean', '--if-exists');
  expect(await largeObjectRows(pg, sectioned)).toEqual(expected);
  expect((await commitsIn(pg, sectioned)) - commits).toBeLessThan(2 * OBJECTS);
}, 300_000);

test("a migration's pre-data creates the large objects in batches, and the rest as pg_restore's pre-data run does", async () => {
  const pgRestore = { path: pgTool('pg_restore', 15), version: '15', major: 15 };
  const restoreInto = (name: string, args: string[]) =>
    runTool(pgRestore.path, [...args, '--exit-on-error', '--no-password', `--dbname=${name}`, dump], {
      ...toolEnv(),
      PATH: process.env.PATH ?? '',
    });
  await withClient(pg, 'postgres', async (c) => {
    await c.query(`CREATE DATABASE ${quoteIdent(preData)}`);
    await c.query(`CREATE DATABASE ${quoteIdent(preDataByPgRestore)}`);
  });
  const runs: { args: string[]; list?: string }[] = [];
  await pgRestorePreData(pgRestore, {
    dumpFile: dump,
    env: toolEnv(),
    toc: await readArchiveToc(createReadStream(dump)),
    connect: connectTo(preData),
    run: async (args) => {
      const list = args.find((a) => a.startsWith('--use-list='))?.slice('--use-list='.length);
      runs.push({ args, list: list && readFileSync(list, 'utf8') });
      await restoreInto(preData, args);
    },
  });
  const commits = await commitsIn(pg, preData);
  await restoreInto(preDataByPgRestore, ['--section=pre-data']);
  expect(runs).toEqual([
    { args: ['--section=pre-data', `--use-list=${dump}.rest.list`], list: expect.any(String) },
  ]);
  expect(runs[0].list).toMatch(/ TABLE public docs /);
  expect(runs[0].list).not.toMatch(/ BLOB /);
  expect(existsSync(`${dump}.rest.list`)).toBe(false);
  const objects = await largeObjectRows(pg, preDataByPgRestore);
  expect(objects).toHaveLength(OBJECTS);
  expect(await largeObjectRows(pg, preData)).toEqual(objects);
  expect(commits).toBeLessThan(OBJECTS);
}, 300_000);

test('a pre-data without large objects is one pg_restore run of the section, not listed first', async () => {
  const runs: string[][] = [];
  await pgRestorePreData(
    { path: '/nonexistent/pg_restore', version: '15', major: 15 },
    {
      dumpFile: dump,
      env: toolEnv(),
      toc: [],
      connect: connectTo(preData),
      run: async (args) => {
        runs.push(args);
      },
    },
  );
  expect(runs).toEqual([['--section=pre-data']]);
});
