/**
 * `pgferry migrate --online` (issue 17): PostgreSQL 15 → 17 while a writer commits continuously,
 * the preflight's refusals, a failure during the catch-up, and DDL during the migration. One
 * private source (wal_level = logical) and one private target serve the whole file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { MigrateReport } from '../../core/contracts';
import { type CliResult, runCli, runMigrate, sourceUrl } from '../support/cli';
import { createSeededDatabase, type TestPostgres, testEnv, uniqueName, withClient } from '../support/env';
import { usePrivateServer } from '../support/private-server';

const source = usePrivateServer(15, {
  settings: { wal_level: 'logical', max_replication_slots: 3, max_wal_senders: 6 },
});
const target = usePrivateServer(17);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Each table's rows as a count and a sum of 64-bit hashes of their text: equal on both sides means
 * equal data (the same rows, whatever their order), without sorting the table.
 */
async function checksums(
  pg: TestPostgres,
  database: string,
  tables: string[],
): Promise<Record<string, string>> {
  return withClient(pg, database, async (c) => {
    const out: Record<string, string> = {};
    for (const t of tables) {
      const { rows } = await c.query<{ sum: string }>(
        `SELECT count(*) || ':' || coalesce(sum(hashtextextended(x::text, 0)::numeric), 0) AS sum FROM ${t} x`,
      );
      out[t] = rows[0].sum;
    }
    return out;
  });
}

/** The replication objects an online migration leaves on either side: none, when all is well. */
async function leftovers(database: string): Promise<string[]> {
  const onSource = await withClient(source(), database, (c) =>
    c.query<{ name: string }>(
      // A user's publication (the first describe's) is no leftover.
      `SELECT slot_name AS name FROM pg_replication_slots
       UNION ALL SELECT pubname FROM pg_publication WHERE pubname <> 'users_pub'`,
    ),
  );
  const onTarget = await withClient(target(), 'postgres', (c) =>
    c.query<{ name: string }>('SELECT subname AS name FROM pg_subscription'),
  );
  return [...onSource.rows, ...onTarget.rows].map((r) => r.name);
}

async function targetDatabaseExists(name: string): Promise<boolean> {
  const { rows } = await withClient(target(), 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]),
  );
  return rows.length > 0;
}

/** Resolves once the target has the migration's subscription (the catch-up is about to begin). */
async function subscribed(): Promise<void> {
  for (;;) {
    const { rows } = await withClient(target(), 'postgres', (c) => c.query('SELECT 1 FROM pg_subscription'));
    if (rows.length) return;
    await sleep(50);
  }
}

function migrate(database: string, targetDatabase: string, store: string, extra: string[] = []) {
  return runMigrate(sourceUrl(source(), database), sourceUrl(target(), targetDatabase), store, [
    '--online',
    '--no-schema-test',
    ...extra,
  ]);
}

describe('an online migration while a writer commits continuously', () => {
  const database = uniqueName('online_src');
  const migrated = uniqueName('online_dst');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-online-'));
  const tables = ['accounts', 'orders', 'ledger'];
  let result: CliResult;
  let report: MigrateReport;
  // What the writer saw committed before its first refused write.
  const inserted: number[] = [];
  const deleted: number[] = [];
  let firstRefusal: number | undefined;

  beforeAll(async () => {
    // Enough rows that the copy takes seconds; `ledger` has no key (--replica-identity-full).
    await createSeededDatabase(
      source(),
      database,
      `CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text NOT NULL);
       INSERT INTO accounts SELECT g, 0, repeat(md5(g::text), 6) FROM generate_series(1, 400000) g;
       CREATE TABLE orders (id bigserial PRIMARY KEY, account int NOT NULL REFERENCES accounts, amount int NOT NULL);
       INSERT INTO orders (account, amount) SELECT 1 + g % 400000, g % 100 FROM generate_series(1, 400000) g;
       CREATE INDEX ON orders (account);
       CREATE TABLE ledger (account int NOT NULL, amount int NOT NULL, at timestamptz NOT NULL DEFAULT now());
       CREATE PUBLICATION users_pub FOR TABLE accounts;`,
    );
    let writing = true;
    const writer = (async () => {
      let client: Client | undefined;
      for (let i = 0; writing; i++) {
        try {
          if (!client) {
            client = new Client(source().clientConfig(database));
            client.on('error', () => undefined);
            await client.connect();
          }
          const account = 1 + (i % 1000);
          await client.query('BEGIN');
          const { rows } = await client.query<{ id: string }>(
            'INSERT INTO orders (account, amount) VALUES ($1, $2) RETURNING id',
            [account, i % 50],
          );
          await client.query('UPDATE accounts SET balance = balance + $2 WHERE id = $1', [account, i % 50]);
          await client.query('INSERT INTO ledger (account, amount) VALUES ($1, $2)', [account, i % 50]);
          const gone = await client.query<{ id: string }>(
            'DELETE FROM orders WHERE id = (SELECT min(id) + $1 FROM orders) RETURNING id',
            [i % 97],
          );
          await client.query('COMMIT');
          if (firstRefusal === undefined) {
            inserted.push(Number(rows[0].id));
            deleted.push(...gone.rows.map((r) => Number(r.id)));
          }
        } catch {
          // Ended by the freeze, or read-only after it: a refused write.
          firstRefusal ??= Date.now();
          await client?.end().catch(() => undefined);
          client = undefined;
          await sleep(20);
        }
      }
      await client?.end().catch(() => undefined);
    })();
    try {
      result = await migrate(database, migrated, store, ['--replica-identity-full', '--json']);
    } finally {
      writing = false;
      await writer;
    }
    if (result.code === 0) report = JSON.parse(result.stdout) as MigrateReport;
  }, 600_000);

  afterAll(() => rmSync(store, { recursive: true, force: true }));

  test('succeeds, leaving no slot, publication or subscription, and the source read-only', async () => {
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    expect(inserted.length).toBeGreaterThan(20);
    expect(firstRefusal).toBeDefined();
    expect(await leftovers(database)).toEqual([]);
    // Nor the cutover's sentinel (a schema pgferry_<id>) on either side.
    for (const [pg, db] of [
      [source(), database],
      [target(), migrated],
    ] as const) {
      const { rows } = await withClient(pg, db, (c) =>
        c.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgferry\\_%'`),
      );
      expect(rows).toEqual([]);
    }
    expect(report.sourceLeftFrozen).toBe(true);
    await expect(
      withClient(source(), database, (c) => c.query('INSERT INTO ledger VALUES (1, 1)')),
    ).rejects.toThrow(/read-only transaction/);
    // The replica identity the migration gave the key-less table is undone.
    const identity = await withClient(source(), database, (c) =>
      c.query<{ r: string }>(`SELECT relreplident AS r FROM pg_class WHERE relname = 'ledger'`),
    );
    expect(identity.rows[0].r).toBe('d');
  });

  test("the target, and a restore of the archived backup, carry none of the migration's publication or replica identity; a user's publication migrates", async () => {
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    const publications = (pg: TestPostgres, db: string) =>
      withClient(pg, db, (c) => c.query<{ name: string }>('SELECT pubname AS name FROM pg_publication'));
    const identities = (pg: TestPostgres, db: string) =>
      withClient(pg, db, async (c) => {
        const { rows } = await c.query<{ name: string; r: string }>(
          `SELECT relname AS name, relreplident AS r FROM pg_class WHERE relname = ANY($1) ORDER BY 1`,
          [tables],
        );
        return rows;
      });
    // The source's after the cutover: what the tables had before the migration.
    const before = await identities(source(), database);
    expect(before.find((t) => t.name === 'ledger')?.r).toBe('d');
    // The user's own publication migrates as any object does.
    expect((await publications(target(), migrated)).rows).toEqual([{ name: 'users_pub' }]);
    expect(await identities(target(), migrated)).toEqual(before);
    // The archived backup is a normal backup: restored, it is the source's database too.
    const restored = uniqueName('online_restored');
    const restoring = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      report.databases[0].backupId,
      '--target',
      sourceUrl(target(), restored),
      '--json',
    ]);
    if (restoring.code !== 0) throw new Error(`restore failed: ${restoring.stderr}`);
    expect((await publications(target(), restored)).rows).toEqual([{ name: 'users_pub' }]);
    expect(await identities(target(), restored)).toEqual(before);
  });

  test('every transaction committed before the freeze is on the target; every table is equal', async () => {
    const onTarget = await withClient(target(), migrated, (c) =>
      c.query<{ id: string }>('SELECT id FROM orders WHERE id = ANY($1::bigint[])', [
        [...inserted, ...deleted],
      ]),
    );
    const ids = new Set(onTarget.rows.map((r) => Number(r.id)));
    const stillThere = new Set(deleted);
    expect(inserted.filter((id) => !ids.has(id) && !stillThere.has(id))).toEqual([]);
    expect(deleted.filter((id) => ids.has(id))).toEqual([]);
    expect(await checksums(target(), migrated, tables)).toEqual(await checksums(source(), database, tables));
  });

  test("the target's sequences are past the source's", async () => {
    const last = (pg: TestPostgres, db: string) =>
      withClient(pg, db, (c) =>
        c
          .query<{ v: string }>('SELECT last_value::text AS v FROM orders_id_seq')
          .then((r) => BigInt(r.rows[0].v)),
      );
    const sourceLast = await last(source(), database);
    const next = await withClient(target(), migrated, (c) =>
      c.query<{ v: string }>(`SELECT nextval('orders_id_seq')::text AS v`),
    );
    expect(BigInt(next.rows[0].v)).toBeGreaterThan(sourceLast);
  });

  test('reports the phases, the lag and a write downtime shorter than the copy (and under 5 s here)', () => {
    const online = report.databases[0].online;
    expect(online).toBeDefined();
    expect(online?.sessionsEnded).toBeGreaterThanOrEqual(1);
    for (const phase of ['replication', 'data', 'postData', 'subscribe', 'catchUp', 'cutover']) {
      expect(report.timings[phase]).toBeGreaterThanOrEqual(0);
    }
    const downtime = (Date.parse(report.finishedAt) - (firstRefusal ?? 0)) / 1000;
    expect(report.writeDowntimeSeconds).toBeGreaterThanOrEqual(downtime - 0.5);
    expect(downtime).toBeLessThan(5);
    expect(report.timings.data).toBeGreaterThan(downtime);
  });

  test('pgferry unfreeze makes the source writable again', async () => {
    const unfrozen = await runCli(['unfreeze', '--source', sourceUrl(source(), database)]);
    expect(unfrozen.stdout).toMatch(/writable again/);
    await withClient(source(), database, (c) => c.query('INSERT INTO ledger VALUES (1, 1)'));
  });
});

describe('online refusals, before anything is created', () => {
  const database = uniqueName('online_bad');
  const migrated = uniqueName('online_bad_dst');
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-online-refused-'));
  beforeAll(async () => {
    await createSeededDatabase(
      source(),
      database,
      `CREATE TABLE keyless (a int);
       CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
       SELECT lo_from_bytea(0, 'a large object');
       CREATE ROLE plain LOGIN PASSWORD 'plain pw';
       CREATE TABLE owned (id int PRIMARY KEY); ALTER TABLE owned OWNER TO plain;`,
    );
    // A slot as a crashed online migration leaves it.
    await withClient(source(), database, (c) =>
      c.query(`SELECT pg_create_logical_replication_slot('pgferry_crashed_run', 'pgoutput')`),
    );
  });
  afterAll(async () => {
    await withClient(source(), database, (c) =>
      c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots`),
    );
    rmSync(store, { recursive: true, force: true });
  });

  test('names each problem with what to do, in one line, and creates nothing', async () => {
    const refused = await migrate(database, migrated, store);
    expect(refused.code).not.toBe(0);
    const message = refused.stderr.trim();
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toMatch(/"public"\."keyless".*--replica-identity-full/);
    expect(message).toMatch(/unlogged tables.*"public"\."scratch".*SET LOGGED/);
    expect(message).toMatch(/1 large objects/);
    expect(message).toMatch(/pgferry_crashed_run.*SELECT pg_drop_replication_slot\('pgferry_crashed_run'\)/);
    expect(await leftovers(database)).toEqual(['pgferry_crashed_run']);
    expect(await targetDatabaseExists(migrated)).toBe(false);
  });

  test('a login without REPLICATION is told to get it (rds_replication on RDS)', async () => {
    const refused = await runMigrate(
      `postgres://plain:${encodeURIComponent('plain pw')}@${source().host}:${source().port}/${database}`,
      sourceUrl(target(), migrated),
      store,
      ['--online'],
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/REPLICATION attribute.*rds_replication/);
    expect(refused.stderr).toMatch(/does not own "public"\."keyless"/);
    // CREATE PUBLICATION and the cutover's sentinel schema need it; the database's owner has it.
    expect(refused.stderr).toMatch(
      /may not create in the database "?online_bad\w*"?.*GRANT CREATE ON DATABASE "?online_bad\w*"? TO "?plain"?/,
    );
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('a full slot table is refused', async () => {
    await withClient(source(), database, async (c) => {
      await c.query(`SELECT pg_create_logical_replication_slot('other_1', 'pgoutput')`);
      await c.query(`SELECT pg_create_logical_replication_slot('other_2', 'pgoutput')`);
    });
    const refused = await migrate(database, migrated, store);
    expect(refused.stderr).toMatch(/no free replication slot \(3 of max_replication_slots = 3/);
  });

  test('a source without wal_level = logical names the RDS parameter', async () => {
    const shared = testEnv().server(15);
    const refused = await runMigrate(sourceUrl(shared, 'postgres'), sourceUrl(target(), migrated), store, [
      '--online',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/wal_level is replica, not logical.*rds\.logical_replication/);
  });
});

describe('an online migration that fails during the catch-up, or meets DDL', () => {
  const store = mkdtempSync(path.join(tmpdir(), 'pgferry-online-failed-'));
  afterAll(() => rmSync(store, { recursive: true, force: true }));

  /** Migrates `database` while a writer inserts, doing `meanwhile` once the target subscribed. */
  async function failedMigration(database: string, migrated: string, meanwhile: () => Promise<void>) {
    await createSeededDatabase(
      source(),
      database,
      `CREATE TABLE events (id bigserial PRIMARY KEY, payload text NOT NULL);
       INSERT INTO events (payload) SELECT md5(g::text) FROM generate_series(1, 50000) g;`,
    );
    let writing = true;
    const writer = (async () => {
      // Reconnecting: a failure in the cutover ends its session.
      while (writing) {
        const c = new Client(source().clientConfig(database));
        c.on('error', () => undefined);
        try {
          await c.connect();
          while (writing) await c.query(`INSERT INTO events (payload) VALUES ('during')`);
        } catch {
          await sleep(20);
        } finally {
          await c.end().catch(() => undefined);
        }
      }
    })();
    const running = migrate(database, migrated, store);
    try {
      await subscribed();
      await meanwhile();
      return await running;
    } finally {
      writing = false;
      await writer;
    }
  }

  async function sourceWritable(database: string) {
    await withClient(source(), database, (c) => c.query(`INSERT INTO events (payload) VALUES ('after')`));
  }

  test('a row on the target that conflicts: fails, drops slot, publication and target, source writable', async () => {
    const database = uniqueName('online_conflict');
    const migrated = uniqueName('online_conflict_dst');
    const result = await failedMigration(database, migrated, async () => {
      // A key the writer will soon use on the source, a little ahead of it: the subscription
      // may apply the source's rows between reading the sequence and this insert, so a key it
      // already applied is tried again further on.
      for (let attempt = 0; ; attempt++) {
        const next = await withClient(source(), database, (c) =>
          c.query<{ v: string }>('SELECT last_value::text AS v FROM events_id_seq'),
        );
        try {
          await withClient(target(), migrated, (c) =>
            c.query(`INSERT INTO events VALUES ($1, 'conflict')`, [BigInt(next.rows[0].v) + 200n]),
          );
          return;
        } catch (err) {
          if ((err as { code?: string }).code !== '23505' || attempt >= 10) throw err;
        }
      }
    });
    expect(result.code).not.toBe(0);
    // The apply fails on the row when the writer reaches its key before the cutover; when the
    // catch-up ends first (a loaded machine), the cutover's verification finds the extra row.
    expect(result.stderr).toMatch(
      /failed to apply the source's changes|the target differs from the source: public\.events has \d+ rows/,
    );
    expect(result.stderr).toMatch(/publication and replication slot were dropped/);
    expect(await leftovers(database)).toEqual([]);
    expect(await targetDatabaseExists(migrated)).toBe(false);
    await sourceWritable(database);
  });

  test('DDL on the source: stops naming the table, nothing left, source writable', async () => {
    const database = uniqueName('online_ddl');
    const migrated = uniqueName('online_ddl_dst');
    const result = await failedMigration(database, migrated, () =>
      withClient(source(), database, (c) => c.query('ALTER TABLE events ADD COLUMN added int')).then(
        () => undefined,
      ),
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/schema changed during the online migration: public\.events was altered/);
    expect(await leftovers(database)).toEqual([]);
    expect(await targetDatabaseExists(migrated)).toBe(false);
    await sourceWritable(database);
  });
});
