/**
 * Names are printed escaped: a database whose name holds a newline, a carriage return, a tab or
 * an escape sequence is backed up like any other, and `list`, `status`, `show`, `prune` and error
 * lines print it with its control characters escaped (`\n`, `\t`, `\x1b`), so it can never forge
 * a line of monitoring output or rewrite the terminal. JSON output carries the name exactly.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv } from '../support/env';

const pg = testEnv().server(15);
const suffix = process.pid;
/** A name that, printed raw, would add a line claiming a healthy backup of a database "billing". */
const forging = `shop${suffix}\nbilling  20990101T000000Z-abcdef  0m  ok`;
const escaping = `tab\there\r\x1b[2K${suffix}`;
const printed = (name: string) =>
  name.replaceAll('\n', '\\n').replaceAll('\t', '\\t').replaceAll('\r', '\\r').replaceAll('\x1b', '\\x1b');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-hostile-output-'));
const manifests = new Map<string, BackupManifest>();

/** No control character at all, and the lines a command printed. */
function lines(output: string): string[] {
  expect(output.replace(/\n/g, '')).not.toMatch(/\p{Cc}/u);
  return output.trimEnd().split('\n');
}

beforeAll(async () => {
  for (const name of [forging, escaping]) {
    await createSeededDatabase(pg, name, 'CREATE TABLE t AS SELECT 1 AS id');
    const result = await runCli(['backup', '--source', sourceUrl(pg, name), '--store', dir, '--json']);
    if (result.code !== 0) throw new Error(`backup of ${JSON.stringify(name)} failed: ${result.stderr}`);
    manifests.set(name, JSON.parse(result.stdout) as BackupManifest);
  }
}, 120_000);
afterAll(async () => {
  for (const name of [forging, escaping]) await dropDatabase(pg, name);
});

test('list prints one line per backup, the names escaped; --json carries them exactly', async () => {
  const result = await runCli(['list', '--store', dir]);
  expect(result).toMatchObject({ code: 0, stderr: '' });
  const out = lines(result.stdout);
  expect(out).toHaveLength(3);
  for (const name of [forging, escaping]) {
    expect(out).toContainEqual(expect.stringContaining(`${manifests.get(name)?.id}  ${printed(name)}  `));
  }
  const json = JSON.parse((await runCli(['list', '--store', dir, '--json'])).stdout) as BackupManifest[];
  expect(json.map((m) => m.database).sort()).toEqual([forging, escaping].sort());
});

test('status prints one line per database, and its failure is one line', async () => {
  const result = await runCli(['status', '--store', dir, '--max-verified-age', '1d']);
  expect(result.code).toBe(1);
  const out = lines(result.stdout);
  expect(out).toHaveLength(3);
  expect(out.filter((line) => line.startsWith('billing'))).toEqual([]);
  expect(out).toContainEqual(
    expect.stringMatching(/^shop\d+\\nbilling {2}20990101T000000Z-abcdef {2}0m {2}ok +\d{8}T/),
  );
  expect(lines(result.stderr)).toEqual([
    `pgferry: ${[escaping, forging]
      .sort()
      .map((name) => `${printed(name)}: no verified backup`)
      .join('; ')}`,
  ]);
});

test('show prints the name escaped', async () => {
  for (const name of [forging, escaping]) {
    const result = await runCli(['show', '--store', dir, '--backup', 'latest', '--database', name]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(lines(result.stdout)).toContain(`database     ${printed(name)}`);
  }
});

test('prune prints the names escaped', async () => {
  const result = await runCli(['prune', '--store', dir, '--dry-run']);
  expect(result).toMatchObject({ code: 0, stderr: '' });
  expect(lines(result.stdout)).toHaveLength(4);
});

test('an error line naming the database stays one line', async () => {
  const result = await runCli(['show', '--store', dir, '--backup', 'latest', '--database', `${escaping}x`]);
  expect(result.code).toBe(1);
  expect(lines(result.stderr)).toEqual([
    expect.stringMatching(/^pgferry: no complete backup of tab\\there\\r\\x1b\[2K/),
  ]);
});
