/**
 * Server errors keep what says what to do: the HINT of an error from a pgferry session, and the
 * error, HINT and query lines of a tool's stderr even when the tool quotes a huge query after them
 * (pg_dump's LOCK TABLE of thousands of tables); a server error quoting a huge value is cut.
 */
import { PassThrough } from 'node:stream';
import { parseDurationMs } from '../../../cli/duration';
import { errorMessage } from '../../../core/errors';
import { formatMilliseconds } from '../../../core/postgres/snapshot-guard';
import { collectTail } from '../../../core/postgres/tools';
import { testEnv, withClient } from '../../support/env';

test("a server error's HINT is part of its one-line message", async () => {
  const pg = testEnv().postgres[0];
  const err = await withClient(pg, 'postgres', (c) => c.query('SELECT no_such_function(1)')).catch(
    (e: unknown) => e,
  );
  expect(errorMessage(err)).toMatch(
    /^function no_such_function\(integer\) does not exist \(HINT: No function matches the given name and argument types\./,
  );
});

test('a server error quoting a huge value is one line of at most about a thousand characters', async () => {
  const pg = testEnv().postgres[0];
  // As a COPY of a megabyte-long value into a column that rejects it fails.
  const err = await withClient(pg, 'postgres', (c) =>
    c.query('SELECT $1::bigint', ['7'.repeat(2_000_000)]),
  ).catch((e: unknown) => e);
  const message = errorMessage(err);
  expect(message).toMatch(/^value "7777.*7… \(1999\d{3} more characters\)$/);
  expect(message.length).toBeLessThan(1100);
});

test("a tool's first error, its HINT and its detail survive a huge quoted query", () => {
  const stderr = new PassThrough();
  const tail = collectTail(stderr);
  const tables = Array.from({ length: 5000 }, (_, i) => `public.t_${i}`).join(', ');
  stderr.write('pg_dump: warning: something harmless\n');
  stderr.write('pg_dump: error: query failed: ERROR:  out of shared memory\nHINT:  You might need to ');
  stderr.write('increase max_locks_per_transaction.\n');
  // Written in pieces, as a pipe delivers a long line.
  const detail = `pg_dump: detail: Query was: LOCK TABLE ${tables} IN ACCESS SHARE MODE\n`;
  for (let i = 0; i < detail.length; i += 4096) stderr.write(detail.slice(i, i + 4096));
  const line = tail();
  expect(line).toMatch(
    /^pg_dump: error: query failed: ERROR: {2}out of shared memory \| HINT: {2}You might need to increase max_locks_per_transaction\. \| pg_dump: detail: Query was: LOCK TABLE public\.t_0, /,
  );
  expect(line.length).toBeLessThan(1000);
});

test('lock wait timeouts are written and read as durations', () => {
  expect(parseDurationMs('2s')).toBe(2000);
  expect(parseDurationMs('5min')).toBe(300_000);
  expect(parseDurationMs('1.5s')).toBe(1500);
  expect(parseDurationMs('250ms')).toBe(250);
  expect(parseDurationMs('1h')).toBe(3_600_000);
  for (const bad of ['5', '0s', '-1s', '5 minutes', 'soon']) {
    expect(() => parseDurationMs(bad)).toThrow(/^not a duration: .* \(use e\.g\. 30s, 5min or 1h\)$/);
  }
  expect([2000, 300_000, 1500].map(formatMilliseconds)).toEqual(['2s', '5min', '1500ms']);
});
