import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  choosePgTool,
  findPgTools,
  parseToolVersion,
  prefetchPgTools,
} from '../../../../core/postgres/binaries';
import { extraPgBinDirs } from '../../../support/cli';
import { waitFor } from '../../../support/faults';

test.each([
  ['pg_dump (PostgreSQL) 17.11 (Debian 17.11-0+deb13u1)', { version: '17.11', major: 17 }],
  ['pg_dump (PostgreSQL) 15.18', { version: '15.18', major: 15 }],
  ['pg_dump (PostgreSQL) 18beta1', { version: '18', major: 18 }],
])('reads the version of %j', (output, expected) => {
  expect(parseToolVersion(output)).toEqual(expected);
});

const env = { PATH: '/usr/bin:/bin', PGFERRY_PG_BIN_DIRS: extraPgBinDirs().join(':') };

test("finds Debian's pg_dump under /usr/lib/postgresql", async () => {
  const found = await findPgTools('pg_dump', env);
  expect(found.map((b) => b.path)).toContain('/usr/lib/postgresql/15/bin/pg_dump');
});

test('chooses the closest major that is not older than the server', async () => {
  const tool = await choosePgTool('pg_dump', 14, '14.23', env);
  expect(tool.major).toBe(15);
});

test("prefers the program to Debian's Perl wrapper of the same version (no Perl started per run)", async () => {
  // /usr/bin/pg_dump is pg_wrapper, first in PATH; /usr/lib/postgresql/15/bin/pg_dump is the program it runs.
  const tool = await choosePgTool('pg_dump', 15, '15.18', { PATH: '/usr/bin:/bin' });
  expect(tool.path).toBe('/usr/lib/postgresql/15/bin/pg_dump');
});

test('names the server version and what to install when no pg_dump is new enough', async () => {
  await expect(choosePgTool('pg_dump', 99, '99.1', env)).rejects.toThrow(
    /server runs PostgreSQL 99\.1, which needs pg_dump 99 or newer; found only .*15\.\d+.*Install the PostgreSQL 99 client tools .*PGFERRY_PG_BIN_DIRS/,
  );
});

test("a script of the user's (PGFERRY_PG_BIN_DIRS) is run as it is, not replaced by the program it wraps", async () => {
  const bin = mkdtempSync(path.join(tmpdir(), 'pgferry-wrapper-'));
  writeFileSync(path.join(bin, 'pg_dump'), '#!/bin/sh\nexec /usr/lib/postgresql/15/bin/pg_dump "$@"\n');
  chmodSync(path.join(bin, 'pg_dump'), 0o755);
  try {
    const tool = await choosePgTool('pg_dump', 15, '15.18', {
      PATH: '/usr/bin:/bin',
      PGFERRY_PG_BIN_DIRS: bin,
    });
    expect(tool.path).toBe(path.join(bin, 'pg_dump'));
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

test("does not start Debian's wrapper to choose, where a program will do", async () => {
  // A pg_wrapper (a link named like the tool, first in PATH) that leaves a mark when run.
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-pg-wrapper-'));
  const mark = path.join(dir, 'ran');
  writeFileSync(
    path.join(dir, 'pg_wrapper'),
    `#!/bin/sh\ntouch '${mark}'\nexec /usr/lib/postgresql/15/bin/pg_dump "$@"\n`,
  );
  chmodSync(path.join(dir, 'pg_wrapper'), 0o755);
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  symlinkSync('../pg_wrapper', path.join(bin, 'pg_dump'));
  try {
    const tool = await choosePgTool('pg_dump', 15, '15.18', { PATH: `${bin}:/usr/bin:/bin` });
    expect(tool.path).toBe('/usr/lib/postgresql/15/bin/pg_dump');
    expect(existsSync(mark)).toBe(false);
    // Listing every copy still asks it.
    expect((await findPgTools('pg_dump', { PATH: bin })).map((b) => b.path)).toContain(
      path.join(bin, 'pg_dump'),
    );
    expect(existsSync(mark)).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a prefetched tool is asked its version at once, and not again when chosen', async () => {
  // A pg_dump of the user's that notes every start.
  const bin = mkdtempSync(path.join(tmpdir(), 'pgferry-prefetch-'));
  const starts = path.join(bin, 'starts');
  writeFileSync(
    path.join(bin, 'pg_dump'),
    `#!/bin/sh\necho started >> '${starts}'\nexec /usr/lib/postgresql/15/bin/pg_dump "$@"\n`,
  );
  chmodSync(path.join(bin, 'pg_dump'), 0o755);
  const started = () =>
    existsSync(starts) ? readFileSync(starts, 'utf8').split('\n').filter(Boolean).length : 0;
  const prefetchEnv = { PATH: '/usr/bin:/bin', PGFERRY_PG_BIN_DIRS: bin };
  try {
    prefetchPgTools(['pg_dump'], prefetchEnv);
    await waitFor('the prefetched pg_dump --version', () => (started() === 1 ? true : undefined), 10_000);
    const tool = await choosePgTool('pg_dump', 15, '15.18', prefetchEnv);
    expect(tool.path).toBe(path.join(bin, 'pg_dump'));
    expect(started()).toBe(1);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
