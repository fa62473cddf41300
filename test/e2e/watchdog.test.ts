/**
 * The progress watchdog (issue 13, item 5): a run that makes no progress for the stall timeout is
 * stopped, with its tools, so that it holds no lock any more — here a backup whose pg_dump waits
 * behind another session's ACCESS EXCLUSIVE lock, with a lock wait timeout far longer than the
 * stall timeout (10 s: longer than the run takes to reach the lock). The runner is the one AWS runs (the local executor starts it as ECS would), and
 * PGFERRY_STALL_TIMEOUT_SECONDS is the variable the task definition sets from
 * `tasks.stallTimeoutMinutes`.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';

const pg = testEnv().server(15);
const database = uniqueName('stalled');
const store = mkdtempSync(path.join(tmpdir(), 'pgferry-watchdog-'));

function filesOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  await createSeededDatabase(
    pg,
    database,
    'CREATE TABLE held AS SELECT g AS id FROM generate_series(1, 10) g',
  );
});
afterAll(async () => {
  await dropDatabase(pg, database);
  rmSync(store, { recursive: true, force: true });
});

test('a backup stuck behind a lock is stopped after the stall timeout, naming the holder; it leaves no session, no lock and no backup', async () => {
  const holder = new Client(pg.clientConfig(database));
  await holder.connect();
  try {
    await holder.query("SET application_name = 'the lock holder'");
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE held IN ACCESS EXCLUSIVE MODE');
    const result = await runCli(
      ['backup', '--source', sourceUrl(pg, database), '--store', store, '--lock-wait-timeout', '1h'],
      { env: { PGFERRY_STALL_TIMEOUT_SECONDS: '10' } },
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(
        /^pgferry: stopped: no progress for 10s \(PGFERRY_STALL_TIMEOUT_SECONDS=10\): on 127\.0\.0\.1:\d+ its session \(pid \d+\) waits for a lock, held by pid \d+ \([^,]+, the lock holder, idle in transaction since .*\); the run was stopped and its tools with it, so it holds no lock any more/,
      ),
    ]);
    // pg_dump's session is gone too, its lock request and the locks it held with it (killing
    // pg_dump alone leaves it waiting): the holder is the only one left.
    const { rows } = await holder.query<{ application_name: string }>(
      'SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
    );
    expect(rows).toEqual([]);
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
  }
  // Nothing listed, nothing left behind: no manifest, no dump, no lease.
  const list = await runCli(['list', '--store', store, '--json']);
  expect(JSON.parse(list.stdout)).toEqual([]);
  expect(filesOf(store)).toEqual([]);
}, 120_000);
