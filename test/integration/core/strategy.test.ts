/**
 * The backup strategy preflight chooses from the database's size and the task's cores, and the
 * S3 store uploading with the parts it chose (on the real S3-protocol server).
 */
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../../core/store/s3-store';
import { chooseDumpStrategy, partSizeFor, taskCores } from '../../../core/strategy';
import { testEnv, uniqueName } from '../../support/env';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

test('a database of a few GiB on two cores: one pg_dump unless --jobs asks for more, 5 MiB parts (S3 minimum), two in flight', () => {
  expect(chooseDumpStrategy(2 * GiB, 2)).toEqual({
    format: 'custom',
    jobs: 1,
    upload: { partBytes: 5 * MiB, queueSize: 2 },
  });
});

test('parts grow with the expected dump so that it stays well within 10,000 parts', () => {
  const strategy = chooseDumpStrategy(400 * GiB, 8);
  expect(strategy.upload).toEqual({ partBytes: 26 * MiB, queueSize: 4 });
  // About half the database's size is stored; that many bytes fit in 8,000 such parts.
  expect(200 * GiB).toBeLessThanOrEqual(8000 * (strategy.upload?.partBytes ?? 0));
  expect(partSizeFor(undefined)).toBe(11 * MiB);
});

test("the task's cores: the Fargate task's vCPUs on AWS, this machine's locally", () => {
  const size = { cpu: '2048', memoryMiB: '4096', ephemeralStorageGiB: 21 } as const;
  expect(taskCores(size, { onAws: true, bindings: { version: 1, bindings: [] } })).toBe(2);
  expect(taskCores(size, { onAws: false })).toBe(availableParallelism());
});

test('the S3 store uploads in the parts it is given', async () => {
  const s3 = testEnv().s3;
  const client = new S3Client(s3.clientConfig());
  let parts = 0;
  client.middlewareStack.add(
    (next, context) => (args) => {
      if (context.commandName === 'UploadPartCommand') parts++;
      return next(args);
    },
    { step: 'initialize', name: 'countParts' },
  );
  const store = new S3Store(s3.bucket, uniqueName('parts'), client);
  const body = () => Readable.from([Buffer.alloc(12 * MiB, 7)]);
  const partsOf = async (upload: Promise<void>) => {
    parts = 0;
    await upload;
    return parts;
  };
  // Sized by the store from the expected size: 5 MiB parts; or as the plan chose: 6 MiB.
  expect(await partsOf(store.upload('default', body(), { expectedBytes: 12 * MiB }))).toBe(3);
  expect(
    await partsOf(store.upload('six', body(), { expectedBytes: 12 * MiB, partBytes: 6 * MiB, queueSize: 1 })),
  ).toBe(2);
});
