import { describeIncompleteDatabase, restoringName } from '../../../../core/postgres/incomplete-database';

describe('restoringName: the database a create restore loads before renaming it', () => {
  test('is derived from the target alone, and differs per target', () => {
    expect(restoringName('shop_copy')).toBe(restoringName('shop_copy'));
    expect(restoringName('shop_copy')).toMatch(/^pgferry_restoring_[0-9a-f]{8}_shop_copy$/);
    expect(restoringName('shop_copy')).not.toBe(restoringName('shop_copy2'));
  });

  test('fits 63 bytes, cut between characters; long names sharing a prefix stay apart', () => {
    expect(Buffer.byteLength(restoringName('a'.repeat(100)))).toBe(63);
    const long = 'ä'.repeat(40); // 80 bytes
    const name = restoringName(long);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    expect(Buffer.from(name).toString()).toBe(name); // no character cut in half
    expect(name).toMatch(/^pgferry_restoring_[0-9a-f]{8}_ä+$/);
    expect(restoringName(`${long}a`)).not.toBe(restoringName(`${long}b`));
  });

  test('keeps odd characters as they are (quoted where used)', () => {
    const hostile = `"; DROP DATABASE postgres; --`;
    expect(restoringName(hostile)).toMatch(/_"; DROP DATABASE postgres; --$/);
  });
});

test('describeIncompleteDatabase names the target a leftover restoring database was for', () => {
  const run = {
    kind: 'restore' as const,
    id: '20261203T061603Z-ebd242',
    pid: 4242,
    host: 'h',
    startedAt: '2026-12-03T06:16:03.000Z',
  };
  const loading = restoringName('shop');
  expect(describeIncompleteDatabase(loading, run, 15, 'shop')).toBe(
    `the database "${loading}", which a restore into "shop" loads before renaming it into place, is an incomplete copy ` +
      'left by pgferry restore 20261203T061603Z-ebd242 (started 2026-12-03T06:16:03.000Z by pid 4242 on host h, ' +
      'which was interrupted or is still going): once that run is gone, remove it on the target server with ' +
      `DROP DATABASE "${loading}" WITH (FORCE); and run again`,
  );
});
