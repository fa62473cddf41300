/**
 * The legend under `pgferry list`'s table: what each TIER shown means under the policy in force,
 * and why a backup's first tier is often the longest one (the first backup ever is `yearly`).
 */
import type { RetentionPolicy, RetentionTier } from '../core/retention';

const RULES: Record<RetentionTier, { flag: keyof RetentionPolicy; period: string }> = {
  yearly: { flag: 'keepYearly', period: 'year' },
  monthly: { flag: 'keepMonthly', period: 'month' },
  weekly: { flag: 'keepWeekly', period: 'ISO week' },
  daily: { flag: 'keepDaily', period: 'UTC day' },
  last: { flag: 'keepLast', period: '' },
};

/** The other values of the TIER column. */
const OTHERS: Record<string, string> = {
  expired: 'no rule keeps it any more: `pgferry prune` (or S3 lifecycle rules) deletes it',
  'after now': 'dated after now (a wrong clock): kept, counted by no rule',
  pinned: 'pinned (`pgferry pin`): kept until `pgferry unpin`, whatever the rules say',
  kept: 'a safety or migration backup: counted by no rule, kept for its days (safety= in the policy)',
};

/** Legend lines for the TIER values in `shown`, longest-lived first; empty when none is shown. */
export function tierLegend(shown: readonly string[], policy: RetentionPolicy): string[] {
  const tiers = (Object.keys(RULES) as RetentionTier[]).filter((t) => shown.includes(t));
  const others = Object.keys(OTHERS).filter((o) => shown.includes(o));
  if (tiers.length === 0 && others.length === 0) return [];
  const width = Math.max(...[...tiers, ...others].map((t) => t.length));
  const lines = ['TIER: the longest-lived retention rule that keeps the backup'];
  for (const tier of tiers) {
    const { flag, period } = RULES[tier];
    const n = policy[flag];
    const rule =
      tier === 'last'
        ? `one of the newest ${n} backups`
        : `the newest backup of its ${period}, one of the last ${n} ${period}s with a backup`;
    lines.push(`  ${tier.padEnd(width)}  ${rule}`);
  }
  for (const other of others) lines.push(`  ${other.padEnd(width)}  ${OTHERS[other]}`);
  if (tiers.length > 0) {
    lines.push(
      'A new backup is the newest of its year, month, week and day at once, so it takes the longest tier:',
      "the first backup ever is yearly. The policy: PGFERRY_RETENTION, or prune's --keep-* flags.",
    );
  }
  return lines;
}
