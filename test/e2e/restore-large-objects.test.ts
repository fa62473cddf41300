/**
 * A backup whose manifest says its archive holds large objects is restored from files at once: its
 * dump object is read from the store once (the download), not first as a stream whose TOC only
 * tells what the manifest said. Read through the S3 proxy, which logs every request; the large
 * objects arrive whole, with their owner and comment.
 */
import type { BackupManifest } from '../../core/contracts';
import { runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import { type S3FaultProxy, startS3FaultProxy } from '../support/s3-fault-proxy';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('lobs');
const restored = uniqueName('lobs_restored');
const prefix = uniqueName('lobs');
let proxy: S3FaultProxy;

beforeAll(async () => {
  proxy = await startS3FaultProxy(env.s3.endpoint);
  await createSeededDatabase(
    pg,
    database,
    `CREATE TABLE docs (id int PRIMARY KEY, lo oid);
     INSERT INTO docs SELECT g, lo_from_bytea(0, convert_to(repeat(md5(g::text), g), 'UTF8'))
       FROM generate_series(1, 200) g;
     DO $$ BEGIN EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT lo FROM docs WHERE id = 7), 'seventh'); END $$;`,
  );
}, 120_000);

afterAll(async () => {
  await proxy.close();
  await dropDatabase(pg, database);
  await dropDatabase(pg, restored);
});

/** Every large object's id, owner, comment and contents' MD5, in id order. */
async function largeObjects(name: string) {
  return withClient(pg, name, async (c) => {
    const { rows } = await c.query(
      `SELECT d.id, m.lomowner::regrole::text AS owner, obj_description(m.oid, 'pg_largeobject') AS comment,
              md5(lo_get(m.oid)) AS md5
       FROM docs d JOIN pg_largeobject_metadata m ON m.oid = d.lo ORDER BY d.id`,
    );
    return rows;
  });
}

test('a backup with large objects: its dump object is downloaded once, and the objects restored whole', async () => {
  const store = `s3://${env.s3.bucket}/${prefix}`;
  const s3 = { ...env.s3.env(), AWS_ENDPOINT_URL_S3: proxy.endpoint };
  const backup = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', store, '--json'], {
    env: s3,
  });
  expect(backup.code).toBe(0);
  const manifest = JSON.parse(backup.stdout) as BackupManifest;
  const dump = manifest.objects.find((o) => o.kind === 'dump');
  expect(dump?.largeObjects).toBe(true);
  proxy.log.length = 0;
  const restore = await runCli(
    ['restore', '--store', store, '--backup', manifest.id, '--target', sourceUrl(pg, restored), '--json'],
    { env: s3 },
  );
  expect(restore.code).toBe(0);
  const reads = proxy.log.filter((r) => r.operation === 'GetObject' && r.key.endsWith(`/${dump?.key}`));
  expect(reads).toHaveLength(1);
  const expected = await largeObjects(database);
  expect(expected).toHaveLength(200);
  expect(expected[6].comment).toBe('seventh');
  expect(await largeObjects(restored)).toEqual(expected);
}, 300_000);
