/**
 * core/postgres/copy-stream.ts against a real server: a pg_dump archive streamed through the
 * archive reader (`ArchiveRowCounter`) with a `CopyStream` listening loads the target as the
 * archive passes — a large table dealt over every session, small tables one session each, values
 * with tabs, newlines, backslashes, NULLs and non-ASCII text, in a UTF8 and a LATIN1 database —
 * its rows counted from the COPYs' tags; no COPY starts before the tables exist, the stream held
 * back meanwhile; a row longer than many pieces sent to one session in pieces, never held whole;
 * and a row the target rejects fails the load with the server's message, no
 * session left (what the sessions had committed stays: a migration drops the target); a session
 * whose connect resolves only after the load failed and `close()` was called is ended by then.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { ArchiveRowCounter, type ArchiveTocEntry } from '../../../../core/postgres/archive';
import { CopyStream } from '../../../../core/postgres/copy-stream';
import { pgTool, runTool } from '../../../support/cli';
import { dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-copy-stream-'));
const databases: string[] = [];
const conn = ['-h', pg.host, '-p', String(pg.port), '-U', pg.user];

const SMALL_TABLES = 40;
const SCHEMA = `
  CREATE TABLE big (id bigint PRIMARY KEY, kind text, note text, at timestamptz);
  INSERT INTO big SELECT g, 'kind_' || (g % 7),
    CASE WHEN g % 50 = 0 THEN NULL ELSE 'tab' || chr(9) || 'back\\slash ' || chr(10) || repeat('wörd ', g % 40) END,
    timestamptz '2024-01-01' + g * interval '1 minute'
  FROM generate_series(1, 40000) g;
  CREATE TABLE empty (id int);
  CREATE SEQUENCE counter START 42;
  DO $$ BEGIN FOR i IN 1..${SMALL_TABLES} LOOP
    EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, label text)', i);
    EXECUTE format('INSERT INTO small_%s SELECT g, %L || g FROM generate_series(1, %s) g', i, 'é' || i, i);
  END LOOP; END $$;
`;

async function source(encoding: 'UTF8' | 'LATIN1'): Promise<{ db: string; dump: string }> {
  const db = uniqueName(`cs_src_${encoding.toLowerCase()}`);
  databases.push(db);
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE DATABASE ${db} TEMPLATE template0 ENCODING '${encoding}' LC_COLLATE 'C' LC_CTYPE 'C'`),
  );
  await withClient(pg, db, (c) => c.query(SCHEMA));
  const dump = path.join(dir, `${db}.dump`);
  await runTool(pgTool('pg_dump', 15), ['-Fc', '-Z0', '-f', dump, ...conn, '-d', db], {
    PGPASSWORD: pg.password,
  });
  return { db, dump };
}

/** Every table's rows hashed, in key order. */
async function contents(db: string): Promise<Record<string, string>> {
  return withClient(pg, db, async (c) => {
    const { rows } = await c.query<{ t: string }>(
      `SELECT relname AS t FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1`,
    );
    const out: Record<string, string> = {};
    for (const { t } of rows) {
      out[t] = (
        await c.query(
          `SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS h FROM ${t} x`,
        )
      ).rows[0].h;
    }
    return out;
  });
}

/**
 * A target database with the archive's pre-data restored, then the archive streamed through the
 * reader into a `CopyStream` of `sessions` sessions (small pieces: the big table spreads). Returns
 * the rows by table and the COPY statements each session ran.
 */
async function load(
  dump: string,
  target: string,
  opts: {
    encoding?: 'UTF8' | 'LATIN1';
    sessions: number;
    tablesReady?: (restored: Promise<void>) => Promise<void>;
    onRead?: (bytes: number) => void;
  },
) {
  databases.push(target);
  await withClient(pg, 'postgres', (c) =>
    c.query(
      `CREATE DATABASE ${target} TEMPLATE template0 ENCODING '${opts.encoding ?? 'UTF8'}' LC_COLLATE 'C' LC_CTYPE 'C'`,
    ),
  );
  const copies: string[][] = [];
  /** The longest write to any session's socket. */
  let largestWrite = 0;
  const copy = new CopyStream({
    sessions: opts.sessions,
    connect: async () => {
      const c = new Client(pg.clientConfig(target));
      await c.connect();
      const mine: string[] = [];
      copies.push(mine);
      const socket = (c as unknown as { connection: { stream: Writable } }).connection.stream;
      const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
      (socket as unknown as { write: typeof write }).write = (chunk, ...rest) => {
        if (Buffer.isBuffer(chunk)) largestWrite = Math.max(largestWrite, chunk.length);
        return write(chunk, ...rest);
      };
      const query = c.query.bind(c) as (q: unknown) => unknown;
      (c as unknown as { query: (q: unknown) => unknown }).query = (q: unknown) => {
        const text = (q as { text?: string }).text;
        if (typeof text === 'string' && text.startsWith('COPY')) mine.push(text);
        return query(q);
      };
      return c;
    },
    settings: [['synchronous_commit', 'off']],
    pieceBytes: 64 * 1024,
    spreadBytes: 128 * 1024,
    queuedBytes: 256 * 1024,
  });
  const preData = runTool(
    pgTool('pg_restore', 15),
    ['--section=pre-data', '--exit-on-error', `--dbname=${target}`, ...conn, dump],
    { PGPASSWORD: pg.password },
  ).then(() => undefined);
  const tablesReady = opts.tablesReady ? opts.tablesReady(preData) : preData;
  const counter = new ArchiveRowCounter({
    onToc: (toc: ArchiveTocEntry[]) => copy.start(toc, tablesReady),
    tableData: copy,
    ready: () => copy.ready(),
  });
  let read = 0;
  try {
    const bytes = readFileSync(dump);
    const pieces = (function* () {
      for (let i = 0; i < bytes.length; i += 16 * 1024) {
        read = i;
        opts.onRead?.(read);
        yield bytes.subarray(i, i + 16 * 1024);
      }
    })();
    await pipeline(Readable.from(pieces), counter, new Writable({ write: (_c, _e, cb) => cb() }));
    const rows = await copy.finish();
    return { rows, streamRows: counter.scanner.tables(), copies, largestWrite };
  } finally {
    await copy.close();
  }
}

/**
 * Whether the server has sessions whose `column` is `value` left, after waiting (up to 5 s) for
 * the backends of ended clients to exit.
 */
async function sessionsLeft(column: 'datname' | 'pid', value: string | number): Promise<string> {
  return withClient(pg, 'postgres', async (c) => {
    for (let i = 0; i < 50; i++) {
      const { rowCount } = await c.query(
        `SELECT 1 FROM pg_stat_activity WHERE ${column} = $1 AND backend_type = 'client backend'`,
        [value],
      );
      if (!rowCount) return 'no sessions';
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return 'sessions left';
  });
}

afterAll(async () => {
  for (const db of databases) await dropDatabase(pg, db);
  rmSync(dir, { recursive: true, force: true });
});

test.each(['UTF8', 'LATIN1'] as const)(
  'a %s archive loads as it streams: identical tables, the big one over every session, rows from the tags',
  async (encoding) => {
    const { db, dump } = await source(encoding);
    const target = uniqueName('cs_dst');
    // Each COPY names the archive's encoding: LATIN1 rows are not read as UTF8.
    const { rows, streamRows, copies } = await load(dump, target, { sessions: 3, encoding });
    expect(await contents(target)).toEqual(await contents(db));
    expect(streamRows).toHaveLength(SMALL_TABLES + 2);
    expect(Object.fromEntries(streamRows.map((t) => [t.name, rows.get(t.dumpId)]))).toEqual(
      Object.fromEntries(streamRows.map((t) => [t.name, t.rows])),
    );
    // Every session loaded part of the big table; each small table was one COPY; the empty none.
    expect(copies).toHaveLength(3);
    for (const session of copies) expect(session.filter((s) => /big/.test(s))).toHaveLength(1);
    const all = copies.flat();
    for (let i = 1; i <= SMALL_TABLES; i++) {
      expect(all.filter((s) => new RegExp(`small_${i} `).test(s))).toHaveLength(1);
    }
    expect(all.filter((s) => /empty/.test(s))).toEqual([]);
  },
  300_000,
);

test('a row longer than many pieces reaches one session in pieces, in order: no buffer holds it whole', async () => {
  // Pieces of 64 KiB in batches of 128 KiB (`load`). Rows of 1 MiB and 2.7 MiB of COPY text and of
  // sizes around a batch's, between short ones; the longest one its table's last row (its end
  // marker right after it).
  const db = uniqueName('cs_src_rows');
  databases.push(db);
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE DATABASE ${db} TEMPLATE template0 ENCODING 'UTF8'`),
  );
  await withClient(pg, db, (c) =>
    c.query(`
      CREATE TABLE files (id int PRIMARY KEY, name text, data bytea);
      INSERT INTO files
        SELECT g, 'file ' || g, CASE
          WHEN g % 10 = 3 THEN decode(repeat(md5(g::text), 32768), 'hex')
          WHEN g % 10 = 7 THEN decode(repeat('ab', 65536 - 64 + g), 'hex')
          ELSE decode(md5(g::text), 'hex') END
        FROM generate_series(1, 60) g;
      CREATE TABLE last_long (id int, body text);
      INSERT INTO last_long VALUES (1, 'short'), (2, repeat('wörd' || chr(9) || chr(10), 300000));
      CREATE TABLE after (id int);
      INSERT INTO after SELECT generate_series(1, 100);
    `),
  );
  const dump = path.join(dir, `${db}.dump`);
  await runTool(pgTool('pg_dump', 15), ['-Fc', '-Z0', '-f', dump, ...conn, '-d', db], {
    PGPASSWORD: pg.password,
  });
  const target = uniqueName('cs_dst_rows');
  const { rows, streamRows, largestWrite } = await load(dump, target, { sessions: 2 });
  expect(await contents(target)).toEqual(await contents(db));
  expect(Object.fromEntries(streamRows.map((t) => [t.name, rows.get(t.dumpId)]))).toEqual({
    files: 60,
    last_long: 2,
    after: 100,
  });
  // Before, the batch grew to hold the longest row whole, and was sent so: 2.7 MiB at once.
  expect(largestWrite).toBeLessThanOrEqual(128 * 1024);
}, 300_000);

test('no COPY starts before the tables exist: the stream is held back meanwhile', async () => {
  const { db, dump } = await source('UTF8');
  const size = readFileSync(dump).length;
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let readWhenReleased = -1;
  let read = 0;
  const loading = load(dump, uniqueName('cs_held'), {
    sessions: 2,
    tablesReady: (restored) => restored.then(() => released),
    onRead: (bytes) => {
      read = bytes;
    },
  });
  // Well after the pre-data is restored, the tables are still "not ready": the stream waits.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  readWhenReleased = read;
  release();
  const { rows, streamRows } = await loading;
  expect(readWhenReleased).toBeLessThan(size / 2);
  expect(streamRows.map((t) => rows.get(t.dumpId))).toEqual(streamRows.map((t) => t.rows));
  expect(db).toBeDefined();
}, 300_000);

test("a row the target rejects fails the load with the server's message and leaves no session", async () => {
  const { dump } = await source('UTF8');
  const target = uniqueName('cs_reject');
  const failure = await load(dump, target, {
    sessions: 2,
    // Once the tables exist, one of the big table's rows is made unacceptable.
    tablesReady: async (restored) => {
      await restored;
      await withClient(pg, target, (c) => c.query('ALTER TABLE big ADD CHECK (id <> 30000)'));
    },
  }).catch((err: Error & { code?: string }) => err);
  expect(failure).toMatchObject({ code: 'RestoreFailed' });
  expect((failure as Error).message).toMatch(
    /^loading the data of "public"\."big" failed: new row for relation "big" violates check constraint/,
  );
  expect(await sessionsLeft('datname', target)).toBe('no sessions');
}, 300_000);

test('a session that connects after the load failed and was closed is ended all the same', async () => {
  const target = uniqueName('cs_late');
  databases.push(target);
  await withClient(pg, 'postgres', (c) => c.query(`CREATE DATABASE ${target}`));
  // The second session's connect resolves only once the load has failed and close() was called.
  let lateConnected: (client: Client) => void = () => undefined;
  const late = new Promise<Client>((resolve) => {
    lateConnected = resolve;
  });
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let calls = 0;
  const copy = new CopyStream({
    sessions: 2,
    connect: async () => {
      const c = new Client(pg.clientConfig(target));
      await c.connect();
      if (calls++ === 1) {
        lateConnected(c);
        await released;
      }
      return c;
    },
  });
  copy.start([], new Promise<void>(() => undefined));
  const client = await late;
  const pid = (client as unknown as { processID: number }).processID;
  let ended = false;
  client.once('end', () => {
    ended = true;
  });
  try {
    copy.abort(new Error('stopped by the test'));
    const closed = copy.close();
    release();
    await closed;
    // close() waited for it: ended by the time it resolves (a database drop may follow at once).
    expect(ended).toBe(true);
    expect(await sessionsLeft('pid', pid)).toBe('no sessions');
    expect(copy.error?.message).toMatch(/stopped by the test/);
  } finally {
    await client.end().catch(() => undefined);
  }
}, 300_000);
