/** The legend under `pgferry list`: only the tiers shown, in the policy's numbers. */
import { tierLegend } from '../../../cli/tier-legend';
import { DEFAULT_RETENTION } from '../../../core/retention';

test('nothing to explain when no tier is shown', () => {
  expect(tierLegend([], DEFAULT_RETENTION)).toEqual([]);
});

test('each tier shown, longest-lived first, in the numbers of the policy in force', () => {
  const legend = tierLegend(['last', 'expired', 'monthly', 'monthly'], {
    ...DEFAULT_RETENTION,
    keepMonthly: 24,
  });
  expect(legend.slice(0, 4)).toEqual([
    'TIER: the longest-lived retention rule that keeps the backup',
    '  monthly  the newest backup of its month, one of the last 24 months with a backup',
    '  last     one of the newest 7 backups',
    '  expired  no rule keeps it any more: `pgferry prune` (or S3 lifecycle rules) deletes it',
  ]);
  expect(legend.join(' ')).toMatch(/the first backup ever is yearly/);
});

test('a list of only backups dated after now explains just that', () => {
  expect(tierLegend(['after now'], DEFAULT_RETENTION)).toEqual([
    'TIER: the longest-lived retention rule that keeps the backup',
    '  after now  dated after now (a wrong clock): kept, counted by no rule',
  ]);
});
