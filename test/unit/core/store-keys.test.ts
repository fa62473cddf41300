import {
  assertBackupId,
  backupObjectKey,
  backupPrefix,
  databaseFromSegment,
  databaseSegment,
  newBackupId,
  runCleanupKey,
} from '../../../core/store-keys';

describe('databaseSegment', () => {
  test.each(['shop', 'Shop_2024', 'a.b-c'])('keeps the plain name %s as it is', (name) => {
    expect(databaseSegment(name)).toBe(name);
  });

  test.each([
    '../../etc',
    '..',
    '.hidden',
    'a/b',
    '/abs',
    'x"; DROP DATABASE postgres; --',
    'Ünïcødé db',
    '%41',
  ])('encodes %j into one reversible segment with no slash or leading dot', (name) => {
    const segment = databaseSegment(name);
    expect(segment).toMatch(/^[A-Za-z0-9_%-][A-Za-z0-9_.%-]*$/);
    expect(segment).not.toMatch(/^\./);
    expect(databaseFromSegment(segment)).toBe(name);
  });

  test.each([
    ['', /empty/],
    ['a\0b', /NUL/],
    ['x'.repeat(129), /longer than 128 bytes/],
  ])('refuses %j', (name, message) => {
    expect(() => databaseSegment(name)).toThrow(message);
  });
});

describe('backup ids', () => {
  test('new ids sort by time and pass validation', () => {
    const earlier = newBackupId(new Date('2026-01-02T03:04:05Z'));
    const later = newBackupId(new Date('2026-01-02T03:04:06Z'));
    expect(earlier).toMatch(/^20260102T030405Z-[0-9a-f]{6}$/);
    expect(earlier < later).toBe(true);
    expect(() => assertBackupId(earlier)).not.toThrow();
  });

  test.each(['../../x', '20260102T030405Z-abcdef/../..', 'latest', ''])('refuses %j', (id) => {
    expect(() => backupPrefix('db', id)).toThrow(/not a backup id/);
  });
});

test('object keys stay inside their backup folder', () => {
  const id = newBackupId();
  expect(backupObjectKey('my db', id, 'manifest.json')).toBe(`my%20db/${id}/manifest.json`);
  expect(() => backupObjectKey('db', id, '../../manifest.json')).toThrow(/not a backup object name/);
});

test('a run’s cleanup record lives under .runs/, which no catalog name can be, named by the run id only', () => {
  expect(runCleanupKey('restore-drill-7')).toBe('.runs/restore-drill-7/cleanup.json');
  expect(runCleanupKey(`backup-${'a'.repeat(80)}`)).toBe(`.runs/backup-${'a'.repeat(80)}/cleanup.json`);
  expect(() => databaseFromSegment('.runs')).toThrow(/not a pgferry database folder/);
  for (const id of ['restore-../x', 'drill-7/', 'Restore-x', `backup-${'a'.repeat(81)}`, 'backup-']) {
    expect(() => runCleanupKey(id)).toThrow(/not a run id/);
  }
});
