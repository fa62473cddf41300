/** Restoring a backup's download: what a failed download or decompression tells the user. */
import { downloadFailure } from '../../../../../containers/pg-tools/src/restore-backup';
import type { BackupManifest, StoredObject } from '../../../../../core/contracts';

test('a disk that fills up during the download is named as such, with the target untouched; other failures are corruption', () => {
  const object = { key: 'dump.pgdump.zst' } as StoredObject;
  const manifest = { id: '20261121T233200Z-3d6d1f' } as BackupManifest;
  const full = Object.assign(new Error('write failed'), { code: 'ENOSPC' });
  expect(downloadFailure(full, object, manifest)).toMatchObject({
    code: 'RestoreFailed',
    message: 'no space left to download dump.pgdump.zst; nothing of the backup was written to the target',
  });
  expect(downloadFailure(Object.assign(new Error('quota'), { code: 'EDQUOT' }), object, manifest).code).toBe(
    'RestoreFailed',
  );
  expect(downloadFailure(new Error('zstd: bad magic'), object, manifest)).toMatchObject({
    code: 'BackupCorrupt',
    message: expect.stringMatching(
      /^object dump\.pgdump\.zst of backup 20261121T233200Z-3d6d1f cannot be read/,
    ),
  });
});
