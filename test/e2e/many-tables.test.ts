/**
 * A database of 5,000 tables, on a server at default settings, through backup, restore and verify.
 * Its manifest alone is more than Step Functions' 256 KiB, and more than Linux lets one environment
 * variable be (a restore of it failed with `spawn E2BIG` while the plan, manifest included, was
 * the runner's environment). Jobs go by reference: the ECS container overrides each state machine
 * sends and every state stay small — measured here from the execution's history, as Step Functions
 * records it — while the full manifest and reports are in the store.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  containerOverridesCharacters,
  MAX_CONTAINER_OVERRIDES_CHARACTERS,
  MAX_PAYLOAD_BYTES,
  payloadBytes,
} from '../../cli/aws-limits';
import { passwordEnvVar } from '../../core/connection';
import {
  type BackupManifest,
  BackupManifestSchema,
  type BackupOutcome,
  type RestoreOutcome,
  RestoreReportSchema,
  type VerifyOutcome,
  VerifyReportSchema,
} from '../../core/contracts';
import { openStore } from '../../core/store';
import { extraPgBinDirs } from '../support/cli';
import { createDatabase, type TestPostgres, withClient } from '../support/env';
import { usePrivateServer } from '../support/private-server';

const TABLES = 5_000;
const database = 'many_tables';
const restored = 'many_tables_restored';
const server = usePrivateServer(15);
const storeUrl = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-many-tables-'))}`;
let pg: TestPostgres;

/** What the history of one run shows: its largest payload, and each ECS task's container overrides. */
interface Measured {
  largestPayloadBytes: number;
  largestPayload: string;
  overrides: { state: string; characters: number }[];
}

interface HistoryEvent {
  type: string;
  state?: string | { name: string; input?: unknown; output?: unknown };
  input?: unknown;
  output?: unknown;
  parameters?: { Overrides?: { ContainerOverrides?: unknown } };
}

function measure(events: HistoryEvent[]): Measured {
  const measured: Measured = { largestPayloadBytes: 0, largestPayload: '', overrides: [] };
  const payload = (what: string, value: unknown) => {
    const bytes = payloadBytes(value);
    if (bytes > measured.largestPayloadBytes)
      Object.assign(measured, { largestPayloadBytes: bytes, largestPayload: what });
  };
  for (const event of events) {
    const state = typeof event.state === 'string' ? event.state : event.state?.name;
    if (event.type === 'ExecutionStarted') payload('the execution input', event.input);
    if (event.type === 'ExecutionSucceeded') payload("the execution's output", event.output);
    if (event.type === 'StateEntered' && typeof event.state === 'object')
      payload(`${state}'s input`, event.state.input);
    if (event.type === 'StateExited' && typeof event.state === 'object')
      payload(`${state}'s output`, event.state.output);
    if (event.type === 'TaskScheduled') {
      payload(`the parameters of ${state}`, event.parameters);
      const overrides = event.parameters?.Overrides?.ContainerOverrides;
      if (overrides)
        measured.overrides.push({
          state: String(state),
          characters: containerOverridesCharacters(overrides),
        });
    }
  }
  return measured;
}

/** Runs one workflow in this process (the CLI's executor), recording its history. */
async function run(
  workflow: 'runBackupWorkflow' | 'runRestoreWorkflow' | 'runVerifyWorkflow',
  input: unknown,
): Promise<{ output: unknown; measured: Measured }> {
  const executor = await import('../../cli/local-executor');
  const events: HistoryEvent[] = [];
  const output = await executor[workflow](input, { onEvent: (e) => events.push(e as HistoryEvent) });
  return { output, measured: measure(events) };
}

beforeAll(async () => {
  pg = server();
  await createDatabase(pg, database);
  // One DO block; it commits every 500 tables, so that creating them needs no more locks than a
  // server at default settings has.
  await withClient(pg, database, (c) =>
    c.query(`DO $$
      BEGIN
        FOR i IN 1..${TABLES} LOOP
          EXECUTE format('CREATE TABLE order_history_%s (id int, note text)', i);
          EXECUTE format('INSERT INTO order_history_%s VALUES (%s, %L)', i, i, 'row of table ' || i);
          IF i % 500 = 0 THEN COMMIT; END IF;
        END LOOP;
      END $$`),
  );
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
  process.env.PGFERRY_PG_BIN_DIRS = extraPgBinDirs().join(':');
  process.env[passwordEnvVar('source')] = pg.password;
  process.env[passwordEnvVar('target')] = pg.password;
}, 600_000);
afterAll(() => {
  delete process.env[passwordEnvVar('source')];
  delete process.env[passwordEnvVar('target')];
});

const connection = (db: string) => ({ host: pg.host, port: pg.port, database: db, user: pg.user });

function expectWithinAwsLimits(measured: Measured, ecsStates: string[]): void {
  expect(measured.overrides.map((o) => o.state)).toEqual(ecsStates);
  for (const { characters } of measured.overrides) {
    expect(characters).toBeLessThan(MAX_CONTAINER_OVERRIDES_CHARACTERS);
  }
  expect(measured.largestPayloadBytes).toBeLessThan(MAX_PAYLOAD_BYTES);
  // Nothing the workflow passes around grows with the tables: a few KiB for 5,000 of them.
  expect(measured.largestPayloadBytes).toBeLessThan(8 * 1024);
}

let manifest: BackupManifest;

test(`a backup of ${TABLES} tables: small states and overrides, the whole manifest in the store`, async () => {
  const { output, measured } = await run('runBackupWorkflow', {
    source: connection(database),
    store: storeUrl,
  });
  expectWithinAwsLimits(measured, ['Dump']);
  const outcome = output as BackupOutcome;
  expect(outcome).toMatchObject({ kind: 'backup', status: 'complete', tables: TABLES });
  manifest = BackupManifestSchema.parse(await openStore(storeUrl).getJson(outcome.key));
  expect(manifest.tables).toHaveLength(TABLES);
  expect(manifest.tables.every((t) => t.rows === 1)).toBe(true);
  // Carried by value, the manifest would exceed both limits.
  expect(payloadBytes(manifest)).toBeGreaterThan(MAX_PAYLOAD_BYTES);
}, 900_000);

test(`a restore of ${TABLES} tables: its job is read from the store, every table checked`, async () => {
  const { output, measured } = await run('runRestoreWorkflow', {
    store: storeUrl,
    backup: manifest.id,
    target: connection(restored),
  });
  expectWithinAwsLimits(measured, ['Restore']);
  const outcome = output as RestoreOutcome;
  expect(outcome).toMatchObject({ kind: 'restore', status: 'passed', tables: TABLES });
  const report = RestoreReportSchema.parse(await openStore(storeUrl).getJson(outcome.key));
  expect(report.checks.rowCounts).toHaveLength(TABLES);
  expect(report.checks.rowCounts.every((t) => t.restoredRows === 1)).toBe(true);
  const { rows } = await withClient(pg, restored, (c) =>
    c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'"),
  );
  expect(rows[0].n).toBe(TABLES);
}, 900_000);

test(`a verification of ${TABLES} tables: its job is read from the store, every table checked`, async () => {
  const { output, measured } = await run('runVerifyWorkflow', { store: storeUrl, backup: manifest.id });
  expectWithinAwsLimits(measured, ['Verify']);
  const outcome = output as VerifyOutcome;
  expect(outcome).toMatchObject({ kind: 'verify', status: 'passed', tables: TABLES });
  const report = VerifyReportSchema.parse(await openStore(storeUrl).getJson(outcome.key));
  expect(report.checks.rowCounts).toHaveLength(TABLES);
}, 900_000);
