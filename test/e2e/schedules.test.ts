/**
 * The user guide's schedules: its crontab and systemd units are valid, and every `pgferry` command
 * line in them works against a real database with a config file of the guide's shape.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../../cli/profile';
import { REPO, runCli } from '../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';

const guide = readFileSync(path.join(REPO, 'docs', 'user-guide.md'), 'utf8');
const blocks = (language: string) =>
  [...guide.matchAll(new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]);
const crontab = blocks('cron')[0];
const units = blocks('ini').filter((b) => b.startsWith('# /etc/systemd/system/'));
const BIN = path.join(REPO, 'bin', 'pgferry.js');

/** Words of a command line as sh splits them (plain words and '…'-quoted ones are all the guide uses). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

/** Every pgferry command line of the schedules, as arguments (redirections dropped). */
function pgferryCommands(): string[][] {
  const fromCron = crontab
    .split('\n')
    .filter((line) => /^[\d*]/.test(line))
    .map((line) => line.trim().split(/\s+/).slice(5).join(' '));
  const fromUnits = units.flatMap((unit) =>
    [...unit.matchAll(/^ExecStart(?:Post)?=(.*)$/gm)].map((m) =>
      m[1].replace('/usr/local/bin/pgferry', 'pgferry'),
    ),
  );
  return [...fromCron, ...fromUnits].map((line) => {
    const words = shellWords(line.replace(/\s*>\s*\/dev\/null\s*$/, ''));
    expect(words[0]).toBe('pgferry');
    return words.slice(1);
  });
}

test('the guide has a crontab and a service and timer', () => {
  expect(crontab).toBeDefined();
  expect(units.map((u) => u.split('\n')[0])).toEqual([
    '# /etc/systemd/system/pgferry-backup.service',
    '# /etc/systemd/system/pgferry-backup.timer',
  ]);
});

test("the crontab's lines are variables or five valid time fields and a command", () => {
  const ranges = [
    [0, 59],
    [0, 23],
    [1, 31],
    [1, 12],
    [0, 7],
  ];
  for (const line of crontab.split('\n').filter((l) => l.trim() && !l.startsWith('#'))) {
    if (/^[A-Z_]+=\S+$/.test(line)) continue;
    const fields = line.trim().split(/\s+/);
    ranges.forEach(([low, high], i) => {
      for (const part of fields[i].split(',')) {
        const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
        expect(m).not.toBeNull();
        for (const n of [m?.[2], m?.[3]].filter((v) => v !== undefined)) {
          expect(Number(n)).toBeGreaterThanOrEqual(low);
          expect(Number(n)).toBeLessThanOrEqual(high);
        }
      }
    });
    expect(fields[5]).toBe('pgferry');
  }
});

test('the systemd units are valid (systemd-analyze verify where present, else their keys)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-units-'));
  const known: Record<string, string[]> = {
    Unit: ['Description', 'Wants', 'After'],
    Service: ['Type', 'User', 'Environment', 'ExecStart', 'ExecStartPost'],
    Timer: ['OnCalendar', 'RandomizedDelaySec', 'Persistent'],
    Install: ['WantedBy'],
  };
  const files = units.map((unit) => {
    let section = '';
    for (const line of unit.split('\n').filter((l) => l && !l.startsWith('#'))) {
      const header = /^\[(\w+)\]$/.exec(line);
      if (header) section = header[1];
      else expect(known[section]).toContain(line.slice(0, line.indexOf('=')));
    }
    const file = path.join(dir, path.basename(unit.split('\n')[0].slice(2)));
    // Verified with this checkout's pgferry where the guide installs it.
    writeFileSync(file, unit.replaceAll('/usr/local/bin/pgferry', BIN));
    return file;
  });
  const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find(existsSync);
  if (analyze) execFileSync(analyze, ['verify', ...files], { stdio: 'pipe' });
});

test("the guide's config file is valid", () => {
  const example = blocks('json').find((b) => b.includes('"stores"'));
  expect(() => parseConfig(JSON.parse(example ?? ''), '/etc/pgferry/config.json')).not.toThrow();
});

describe('each command line of the schedules, with a config file of the same names', () => {
  const pg = testEnv().server(15);
  const database = uniqueName('scheduled');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-schedules-'));
  const configFile = path.join(dir, 'config.json');
  beforeAll(async () => {
    await createDatabase(pg, database);
    await withClient(pg, database, (c) =>
      c.query('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g'),
    );
    mkdirSync(path.join(dir, 'backups'));
    writeFileSync(
      configFile,
      JSON.stringify({
        stores: { local: 'backups' },
        sources: { shop: pg.urlWithoutPassword(database) },
        defaults: { store: 'local', source: 'shop' },
      }),
    );
  });
  afterAll(() => dropDatabase(pg, database));

  test('backup, verify and status run and pass in order', async () => {
    const commands = pgferryCommands();
    expect(commands.map((c) => c[0])).toEqual(['backup', 'verify', 'status', 'backup', 'status']);
    for (const args of commands) {
      // The guide's database is called shop; this one has a name of its own.
      const named = args.map((arg, i) => (args[i - 1] === '--name' ? database : arg));
      const result = await runCli(named, { env: { PGFERRY_CONFIG: configFile, PGPASSWORD: pg.password } });
      expect({ args, stderr: result.stderr, code: result.code }).toEqual({ args, stderr: '', code: 0 });
    }
  });
});
