/**
 * The server-backup state machine's ASL (dist/asl/server-backup.asl.json, synthesized from
 * lib/server-backup-workflow.ts) run by aws-local-stepfunctions with its Lambda steps bound to the
 * real handlers and each Map iteration's `startExecution.sync:2` a nested run of the backup
 * workflow, against a real PostgreSQL server with several databases: what a server entry's
 * schedule runs on AWS. Members filed under `<entry id>.<database>` as on AWS; a database created
 * between two runs is in the next set, a dropped one is reported as disappeared; a member that
 * fails leaves the set failed and the others complete.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { readSets } from '../../../core/backup-set';
import {
  type BackupManifest,
  BackupManifestSchema,
  type ServerBackupOutcome,
  type ServerBackupRequestInput,
} from '../../../core/contracts';
import { openStore } from '../../../core/store';
import { manifestKey } from '../../../core/store-keys';
import { extraPgBinDirs } from '../../support/cli';
import { quoteIdent, withClient } from '../../support/env';
import { usePrivateServer } from '../../support/private-server';

const AWKWARD = `it's "odd" ☃ db`;

describe('the server-backup workflow, run locally from its ASL', () => {
  const source = usePrivateServer(15);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-server-asl-'));
  const store = `file://${path.join(dir, 'store')}`;
  const saved = { ...process.env };

  const request = (extra: Partial<ServerBackupRequestInput> = {}): ServerBackupRequestInput => {
    const pg = source();
    return {
      name: 'main',
      source: pg.connection('postgres'),
      store,
      selection: { include: [], exclude: ['scratch'] },
      parallel: 2,
      ...extra,
    };
  };

  const run = async (input: ServerBackupRequestInput) => {
    const { runServerBackupWorkflow } = await import('../../../cli/local-executor');
    const events: { type: string; state?: string }[] = [];
    const output = (await runServerBackupWorkflow(input, {
      credentials: { source: source().password },
      onEvent: (e) => events.push(e as { type: string; state?: string }),
    })) as ServerBackupOutcome;
    return { output, events };
  };

  const manifestOf = async (name: string, backupId: string): Promise<BackupManifest> =>
    BackupManifestSchema.parse(await openStore(store).getJson(manifestKey(name, backupId)));

  beforeAll(async () => {
    process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
    process.env.PGFERRY_PG_BIN_DIRS = ['/usr/lib/postgresql/15/bin', ...extraPgBinDirs()].join(':');
    await withClient(source(), 'postgres', async (c) => {
      await c.query('CREATE DATABASE shop');
      await c.query('CREATE DATABASE crm');
      await c.query(`CREATE DATABASE ${quoteIdent(AWKWARD)}`);
      await c.query('CREATE DATABASE scratch');
    });
    await withClient(source(), 'shop', (c) =>
      c.query('CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)'),
    );
    await withClient(source(), 'crm', (c) =>
      c.query(
        'CREATE TABLE contacts (id int PRIMARY KEY); INSERT INTO contacts SELECT generate_series(1, 10)',
      ),
    );
  }, 120_000);
  afterAll(() => {
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  let first: ServerBackupOutcome;

  test('lists the databases, backs each up as a nested backup execution through the Map, records the set last', async () => {
    const { output, events } = await run(request());
    first = output;
    expect(output).toMatchObject({
      kind: 'backup-set',
      status: 'complete',
      members: 4,
      failed: [],
      disappeared: [],
    });
    // One nested backup execution per database (the Map's iterations), then the set's record.
    const scheduled = events.filter((e) => e.type === 'TaskScheduled').map((e) => e.state);
    expect(scheduled.filter((s) => s === 'BackupDatabase')).toHaveLength(4);
    expect(scheduled[0]).toBe('ListDatabases');
    expect(scheduled.at(-1)).toBe('RecordSet');
    const { sets } = await readSets(openStore(store));
    expect(sets).toHaveLength(1);
    const [set] = sets;
    expect(set).toMatchObject({ id: output.setId, name: 'main', status: 'complete', parallel: 2 });
    // Filed under <entry id>.<database>, as on AWS; each a complete backup of origin `set`.
    expect(set.members.map((m) => m.name)).toEqual(
      [AWKWARD, 'crm', 'postgres', 'shop'].map((db) => `main.${db}`).sort(),
    );
    for (const member of set.members) {
      const manifest = await manifestOf(member.name, member.backupId);
      expect(manifest).toMatchObject({ database: member.database, origin: 'set', setId: set.id });
    }
    expect(set.globals?.key).toMatch(/^globals/);
  }, 300_000);

  test('a database created since is in the next set; one dropped since is reported as disappeared', async () => {
    await withClient(source(), 'postgres', async (c) => {
      await c.query('DROP DATABASE crm');
      await c.query('CREATE DATABASE late');
    });
    const { output } = await run(request());
    expect(output).toMatchObject({ status: 'complete', members: 4, disappeared: ['crm'] });
    const { sets } = await readSets(openStore(store));
    expect(sets[0]).toMatchObject({ id: output.setId, disappeared: ['crm'] });
    expect(sets[0].members.map((m) => m.database)).toEqual([AWKWARD, 'late', 'postgres', 'shop'].sort());
    expect(sets[0].id).not.toBe(first.setId);
  }, 300_000);

  test('a member that fails leaves the set failed, recorded, and the other members complete', async () => {
    const holder = new Client(source().clientConfig('shop'));
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
      const { output } = await run(request({ lockWaitTimeoutMs: 1000 }));
      expect(output).toMatchObject({ status: 'failed', failed: ['shop'], members: 3 });
      expect(output.cause).toMatch(/1 of 4 databases failed \(shop\)/);
      const { sets } = await readSets(openStore(store));
      expect(sets[0]).toMatchObject({ id: output.setId, status: 'failed' });
      expect(sets[0].failed[0]).toMatchObject({ database: 'shop' });
      expect(sets[0].failed[0].error.message).toMatch(/lock/i);
      for (const member of sets[0].members) {
        expect((await manifestOf(member.name, member.backupId)).status).toBe('complete');
      }
    } finally {
      await holder.end();
    }
  }, 300_000);
});
