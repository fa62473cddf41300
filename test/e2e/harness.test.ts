import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Client } from 'pg';
import { createDatabase, dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';
import { resolveMajors } from '../support/postgres';
import { decodeAwsChunked } from '../support/s3';

const env = testEnv();
const execFileAsync = promisify(execFile);

describe('test harness: PostgreSQL', () => {
  it('started the requested majors', () => {
    const requested = resolveMajors();
    expect(env.postgres.map((p) => p.major)).toEqual(requested);
    expect(env.server(requested[0]).major).toBe(requested[0]);
    expect(() => env.server(9)).toThrow(/not running/);
  });

  describe.each(env.postgres.map((pg) => [pg.major, pg] as const))('PostgreSQL %i', (major, pg) => {
    it('accepts the password over TCP (url with percent-encoded password) and reports its major', async () => {
      expect(pg.password).toMatch(/[@:/%#?]/);
      expect(pg.url()).not.toContain(pg.password);
      const client = new Client({ connectionString: pg.url() });
      await client.connect();
      try {
        const res = await client.query<{ n: string; u: string; ssl: boolean }>(
          "SELECT current_setting('server_version_num') AS n, current_user AS u",
        );
        expect(Math.floor(Number(res.rows[0].n) / 10000)).toBe(major);
        expect(Number(res.rows[0].n)).toBe(pg.versionNum);
        expect(res.rows[0].u).toBe(pg.user);
      } finally {
        await client.end();
      }
    });

    it('rejects a wrong password (real scram-sha-256 auth)', async () => {
      const client = new Client({ ...pg.clientConfig(), password: 'wrong' });
      await expect(client.connect()).rejects.toThrow(/password authentication failed/);
      await client.end().catch(() => undefined);
    });

    it('creates and drops a database with a hostile name', async () => {
      const name = `x"; DROP DATABASE postgres; -- ${uniqueName('h')}`.slice(0, 63);
      await createDatabase(pg, name);
      await createDatabase(pg, name); // drops and recreates
      await withClient(pg, name, async (c) => {
        await c.query('CREATE TABLE t (id int PRIMARY KEY, s text)');
        await c.query("INSERT INTO t VALUES (1, 'ä€')");
        const res = await c.query<{ db: string; enc: string }>(
          'SELECT current_database() AS db, pg_encoding_to_char(encoding) AS enc FROM pg_database WHERE datname = current_database()',
        );
        expect(res.rows[0]).toEqual({ db: name, enc: 'UTF8' });
      });
      // Also reachable through url() with the database name percent-encoded.
      const viaUrl = new Client({ connectionString: pg.url(name) });
      await viaUrl.connect();
      try {
        expect((await viaUrl.query('SELECT s FROM t')).rows).toEqual([{ s: 'ä€' }]);
      } finally {
        await viaUrl.end();
      }
      // ... and through libpq (psql), which decodes URLs differently from node-postgres.
      const psql = '/usr/lib/postgresql/15/bin/psql';
      if (existsSync(psql)) {
        const { stdout } = await execFileAsync(
          psql,
          ['-X', '-A', '-t', '-w', '-c', 'SELECT current_database()', pg.url(name)],
          {
            env: { PATH: process.env.PATH ?? '' },
          },
        );
        expect(stdout.trim()).toBe(name);
      }
      await dropDatabase(pg, name);
      await dropDatabase(pg, name); // no-op
      const names = await withClient(pg, 'postgres', async (c) =>
        (await c.query<{ datname: string }>('SELECT datname FROM pg_database')).rows.map((r) => r.datname),
      );
      expect(names).toContain('postgres');
      expect(names).not.toContain(name);
    });
  });

  it('quotes identifiers and makes short unique names', () => {
    expect(quoteIdent('a"b')).toBe('"a""b"');
    const a = uniqueName('x'.repeat(100));
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(63);
    expect(uniqueName('db')).not.toBe(uniqueName('db'));
  });
});

describe('test harness: S3', () => {
  const s3 = env.s3;
  const client = new S3Client(s3.clientConfig());
  const prefix = `${uniqueName('harness')}/`;
  afterAll(() => client.destroy());

  const getBytes = async (key: string): Promise<Buffer> => {
    const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(
      await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  };

  it('puts, gets, lists and deletes objects', async () => {
    const key = `${prefix}dir/a b+c%d.txt`;
    await client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: 'hello', ContentType: 'text/plain' }),
    );
    expect((await getBytes(key)).toString()).toBe('hello');
    const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    expect(head.ContentLength).toBe(5);
    await expect(
      client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${prefix}missing` })),
    ).rejects.toThrow();
    const key2 = `${prefix}dir/z.txt`;
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key2, Body: 'z' }));
    const list = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
    expect(list.Contents?.map((o) => o.Key)).toEqual([key, key2]);
    // Paginated listing (continuation tokens).
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, MaxKeys: 1, ContinuationToken: token }),
      );
      keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    expect(keys).toEqual([key, key2]);
    await client.send(
      new DeleteObjectsCommand({ Bucket: s3.bucket, Delete: { Objects: [{ Key: key }, { Key: key2 }] } }),
    );
    const after = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
    expect(after.Contents ?? []).toEqual([]);
  });

  it('stores a streamed PutObject body intact (aws-chunked with checksum trailer is decoded)', async () => {
    const key = `${prefix}stream.bin`;
    const data = randomBytes(300_000);
    await client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: key,
        Body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]),
        ContentLength: data.length,
      }),
    );
    const got = await getBytes(key);
    expect(got.length).toBe(data.length);
    expect(got.equals(data)).toBe(true);
    const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    expect(head.ContentEncoding ?? '').not.toMatch(/aws-chunked/);
  });

  it('does a 12 MB multipart upload with 5 MB parts (lib-storage Upload)', async () => {
    const key = `${prefix}big.bin`;
    const data = randomBytes(12 * 1024 * 1024);
    const parts = new Set<number>();
    const upload = new Upload({
      client,
      params: {
        Bucket: s3.bucket,
        Key: key,
        Body: Readable.from(
          (function* () {
            for (let i = 0; i < data.length; i += 256 * 1024) yield data.subarray(i, i + 256 * 1024);
          })(),
        ),
      },
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    });
    upload.on('httpUploadProgress', (p) => {
      if (p.part !== undefined) parts.add(p.part);
    });
    await upload.done();
    expect([...parts].sort()).toEqual([1, 2, 3]);
    const got = await getBytes(key);
    expect(got.length).toBe(data.length);
    expect(got.equals(data)).toBe(true);
  });

  it('is reachable from a child process configured only by env()', async () => {
    const key = `${prefix}from-env.txt`;
    const script = `
      const { S3Client, PutObjectCommand } = require('@aws-sdk/client-s3');
      new S3Client({}).send(new PutObjectCommand({ Bucket: process.argv[1], Key: process.argv[2], Body: 'via env' }))
        .then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
    const res = spawnSync(process.execPath, ['-e', script, s3.bucket, key], {
      cwd: path.resolve(__dirname, '..', '..'),
      env: { PATH: process.env.PATH ?? '', ...s3.env() },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect((await getBytes(key)).toString()).toBe('via env');
  });

  it('decodes aws-chunked framing', () => {
    const body = Buffer.from(
      '5;chunk-signature=ab\r\nhello\r\n1\r\n!\r\n0\r\nx-amz-checksum-crc32:abc=\r\n\r\n',
    );
    expect(decodeAwsChunked(body)).toEqual({
      data: Buffer.from('hello!'),
      trailers: { 'x-amz-checksum-crc32': 'abc=' },
    });
    expect(() => decodeAwsChunked(Buffer.from('5\r\nhel'))).toThrow(/truncated/);
  });
});
