import { dumpTaskSize, restoreTaskSize } from '../../../core/task-size';

const GiB = 1024 ** 3;

test('a dump streams: no disk beyond the included 21 GiB, a second vCPU for a big database', () => {
  expect(dumpTaskSize(100 * 1024 ** 2)).toEqual({ cpu: '1024', memoryMiB: '2048', ephemeralStorageGiB: 21 });
  expect(dumpTaskSize(500 * GiB)).toEqual({ cpu: '2048', memoryMiB: '4096', ephemeralStorageGiB: 21 });
});

test('a restore gets disk for the downloaded and the decompressed dump, a verify also for its local server, up to 200 GiB', () => {
  expect(restoreTaskSize(30 * GiB, false).ephemeralStorageGiB).toBe(77);
  expect(restoreTaskSize(30 * GiB, true).ephemeralStorageGiB).toBe(113);
  expect(restoreTaskSize(1000 * GiB, true).ephemeralStorageGiB).toBe(200);
  expect(restoreTaskSize(1024, false).ephemeralStorageGiB).toBe(21);
});
