/**
 * Retention, grandfather-father-son: which complete backups to keep, and the tier each belongs
 * to. One pure function, `decideRetention`, decides; everything else applies its answer —
 * `pgferry prune` deletes what it does not keep (stores without lifecycle rules), the record step
 * tags S3 objects with their tier, the stack's lifecycle rules (`lifecycleRulesFor`) act on those
 * tags, and `pgferry list` shows the tiers.
 *
 * The rules are those of restic's `forget --keep-*`:
 * - A backup's time is its `startedAt` (when its snapshot was taken), in UTC. Backups are ordered
 *   newest first (ties: the greater id first), which makes every decision deterministic.
 * - `keepLast` keeps the newest N backups.
 * - `keepDaily`, `keepWeekly`, `keepMonthly`, `keepYearly` each keep the newest backup of each of
 *   the N newest UTC days, ISO weeks (Monday to Sunday, `2026-W11`), months or years that have a
 *   backup, counting back from `now`. Periods without a backup are skipped, not counted: if
 *   backups stop, the last ones are kept rather than aged out.
 * - A backup may satisfy several rules. Its tier is the longest-lived rule that keeps it:
 *   yearly > monthly > weekly > daily > last. A backup no rule keeps is deleted.
 * - `keepLast` is at least 1, so the newest backup is always kept.
 * - Backups newer than `now` (clock skew, or a `--now` in the past) are kept, untouched, and count
 *   toward no rule: they did not exist at `now`.
 * - Backups whose origin is `safety` (a clean restore's backup of its target) or `migration` (the
 *   archive a migration keeps) are not the database's routine backups: they count toward no rule
 *   (never the newest of a day, nor the `keepLast` newest) and are kept `keepSafetyDays` days from
 *   when they were taken, then deleted.
 * - A pinned backup (`pgferry pin`) is always kept, whatever its age or origin; it still counts
 *   toward the rules as its origin does, so pinning one never makes another go.
 */
import { z } from 'zod';
import { PgferryError } from './errors';

export interface RetentionPolicy {
  /** The newest N backups. At least 1. */
  readonly keepLast: number;
  /** The newest backup of each of the N newest UTC days that have one. */
  readonly keepDaily: number;
  /** The newest backup of each of the N newest ISO weeks that have one. */
  readonly keepWeekly: number;
  /** The newest backup of each of the N newest months that have one. */
  readonly keepMonthly: number;
  /** The newest backup of each of the N newest years that have one. */
  readonly keepYearly: number;
  /** Days a `safety` or `migration` backup is kept from when it was taken (0: only while newer). */
  readonly keepSafetyDays: number;
}

/**
 * A week of dailies, a month of weeklies, a year of monthlies and two yearlies: at most
 * 7 + 7 + 4 + 12 + 2 = 32 backups, fewer when rules overlap (with daily backups, about 25).
 */
export const DEFAULT_RETENTION: RetentionPolicy = Object.freeze({
  keepLast: 7,
  keepDaily: 7,
  keepWeekly: 4,
  keepMonthly: 12,
  keepYearly: 2,
  keepSafetyDays: 30,
});

const MAX_KEEP = 100_000;
const count = z.number().int().min(0).max(MAX_KEEP);

export const RetentionPolicySchema = z
  .object({
    keepLast: count.min(1, 'keepLast must be at least 1: the newest backup is always kept'),
    keepDaily: count,
    keepWeekly: count,
    keepMonthly: count,
    keepYearly: count,
    /** Absent in configurations written before it existed: the default. */
    keepSafetyDays: count.default(DEFAULT_RETENTION.keepSafetyDays),
  })
  .strict();

/** The defaults with `overrides` applied, validated. */
export function retentionPolicy(overrides: Partial<RetentionPolicy> = {}): RetentionPolicy {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const result = RetentionPolicySchema.safeParse({ ...DEFAULT_RETENTION, ...defined });
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new PgferryError(
      'InvalidInput',
      `invalid retention policy: ${issue.path.join('.')}: ${issue.message}`,
    );
  }
  return result.data;
}

/** The environment variable holding the policy of the record step and the CLI's defaults. */
export const RETENTION_ENV = 'PGFERRY_RETENTION';

const POLICY_FIELDS: Record<string, keyof RetentionPolicy> = {
  last: 'keepLast',
  daily: 'keepDaily',
  weekly: 'keepWeekly',
  monthly: 'keepMonthly',
  yearly: 'keepYearly',
  safety: 'keepSafetyDays',
};

/** `last=7,daily=7,weekly=4,monthly=12,yearly=2,safety=30` (any subset; the rest from the defaults). */
export function parseRetentionPolicy(text: string): RetentionPolicy {
  const overrides: Partial<Record<keyof RetentionPolicy, number>> = {};
  for (const part of text.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const match = /^([a-z]+)=(\d+)$/.exec(part);
    const field = match ? POLICY_FIELDS[match[1]] : undefined;
    if (!match || !field) {
      throw new PgferryError(
        'InvalidInput',
        `not a retention rule: ${JSON.stringify(part)} (use last=N, daily=N, weekly=N, monthly=N, yearly=N, safety=DAYS)`,
      );
    }
    overrides[field] = Number(match[2]);
  }
  return retentionPolicy(overrides);
}

export function formatRetentionPolicy(policy: RetentionPolicy): string {
  return Object.entries(POLICY_FIELDS)
    .map(([name, field]) => `${name}=${policy[field]}`)
    .join(',');
}

/** The policy in `PGFERRY_RETENTION`, or the defaults; a bad value fails naming the variable. */
export function retentionPolicyFromEnv(env: NodeJS.ProcessEnv): RetentionPolicy {
  const text = env[RETENTION_ENV];
  if (text === undefined || text.trim() === '') return DEFAULT_RETENTION;
  try {
    return parseRetentionPolicy(text);
  } catch (err) {
    throw new PgferryError('InvalidInput', `${RETENTION_ENV}: ${(err as Error).message}`);
  }
}

/** Shortest-lived first: a backup's tier is the last of these that keeps it. */
export const RETENTION_TIERS = ['last', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type RetentionTier = (typeof RETENTION_TIERS)[number];

const TIER_COUNT: Record<RetentionTier, keyof RetentionPolicy> = {
  last: 'keepLast',
  daily: 'keepDaily',
  weekly: 'keepWeekly',
  monthly: 'keepMonthly',
  yearly: 'keepYearly',
};

export function tierCount(policy: RetentionPolicy, tier: RetentionTier): number {
  return policy[TIER_COUNT[tier]];
}

/** What retention needs of a backup. */
export interface RetentionCandidate {
  readonly id: string;
  /** ISO 8601: when the backup was taken (a manifest's `startedAt`). */
  readonly time: string;
  /** Its manifest's origin (`originOf`); `safety` and `migration` are kept by days. @default 'manual' */
  readonly origin?: string;
  /** Pinned (`pgferry pin`): always kept. */
  readonly pinned?: boolean;
}

/** Origins that are no database's routine backup: kept `keepSafetyDays`, counted by no rule. */
export const SHORT_LIVED_ORIGINS: ReadonlySet<string> = new Set(['safety', 'migration']);

/** One rule keeping a backup: `{tier: 'weekly', bucket: '2026-W11'}`; `last` buckets are `#1`… */
export interface RetentionReason {
  readonly tier: RetentionTier;
  readonly bucket: string;
}

export interface RetentionDecision {
  readonly id: string;
  readonly time: string;
  readonly keep: boolean;
  /** The longest-lived rule keeping it; undefined when deleted or newer than `now`. */
  readonly tier?: RetentionTier;
  /** Every rule keeping it, shortest-lived first. */
  readonly reasons: readonly RetentionReason[];
  /** Newer than `now`: kept, untouched, counted by no rule. */
  readonly afterNow: boolean;
  /** Pinned: kept whatever the rules say. */
  readonly pinned: boolean;
  /** A `safety` or `migration` backup: kept by days (`keepSafetyDays`), not by the rules. */
  readonly shortLived: boolean;
}

/**
 * Decides, for the complete backups of one database and a `now`, which to keep and each one's
 * tier. Pure and deterministic: the result (newest first) depends only on the backups' ids and
 * times, the policy and `now`, not on the order of `backups`.
 */
export function decideRetention(
  backups: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision[] {
  const nowMs = now.getTime();
  if (!Number.isFinite(nowMs)) throw new PgferryError('InvalidInput', 'retention needs a valid "now"');
  const sorted = backups
    .map((backup) => {
      const ms = Date.parse(backup.time);
      if (!Number.isFinite(ms)) {
        throw new PgferryError('InvalidInput', `backup ${backup.id} has no valid time: ${backup.time}`);
      }
      const shortLived = SHORT_LIVED_ORIGINS.has(backup.origin ?? 'manual');
      return { ...backup, ms, shortLived, reasons: [] as RetentionReason[] };
    })
    .sort((a, b) => b.ms - a.ms || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const counted = sorted.filter((b) => b.ms <= nowMs && !b.shortLived);
  const safetyCutoffMs = nowMs - policy.keepSafetyDays * 86_400_000;

  for (const tier of RETENTION_TIERS) {
    let remaining = tierCount(policy, tier);
    let previous: string | undefined;
    for (const [index, backup] of counted.entries()) {
      if (remaining === 0) break;
      const bucket = tier === 'last' ? `#${index + 1}` : bucketOf(tier, backup.ms);
      if (bucket === previous) continue;
      previous = bucket;
      backup.reasons.push({ tier, bucket });
      remaining--;
    }
  }

  return sorted.map(({ id, time, ms, reasons, shortLived, pinned = false }) => {
    const afterNow = ms > nowMs;
    const keptByDays = shortLived && ms >= safetyCutoffMs;
    return {
      id,
      time,
      keep: afterNow || pinned || keptByDays || reasons.length > 0,
      tier: reasons.at(-1)?.tier,
      reasons,
      afterNow,
      pinned,
      shortLived,
    };
  });
}

/** The UTC day, ISO week, month or year of a time, as a sortable label. */
function bucketOf(tier: Exclude<RetentionTier, 'last'>, ms: number): string {
  const iso = new Date(ms).toISOString();
  switch (tier) {
    case 'daily':
      return iso.slice(0, 10);
    case 'weekly':
      return isoWeek(ms);
    case 'monthly':
      return iso.slice(0, 7);
    case 'yearly':
      return iso.slice(0, 4);
  }
}

/** `2026-W01`: the ISO 8601 week (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(ms: number): string {
  const day = new Date(ms);
  const thursday = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate()));
  thursday.setUTCDate(thursday.getUTCDate() + 3 - ((thursday.getUTCDay() + 6) % 7));
  const year = thursday.getUTCFullYear();
  const week = Math.ceil(((thursday.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** `weekly 2026-W11`, `last #3`. */
export function describeReason(reason: RetentionReason): string {
  return `${reason.tier} ${reason.bucket}`;
}

// --- S3: tier tags and lifecycle rules --------------------------------------------------------

/** The object tag carrying a backup's tier, set by the record step on S3. */
export const TIER_TAG = 'pgferry-tier';
/** The tier tag's value on the objects of a backup the policy no longer keeps. */
export const EXPIRED_TIER = 'expired';
/**
 * The tier tag's value on a pinned backup's objects: no lifecycle rule selects it, so S3 never
 * expires them (nor moves them to another storage class).
 */
export const PINNED_TIER = 'pinned';
/** A `safety` or `migration` backup within its days: no lifecycle rule selects it either. */
export const KEPT_TIER = 'kept';
export type TierTagValue = RetentionTier | typeof EXPIRED_TIER | typeof PINNED_TIER | typeof KEPT_TIER;

/** The tag a backup's objects should carry; `undefined` (leave as is) when newer than `now`. */
export function tierTagFor(decision: RetentionDecision): TierTagValue | undefined {
  if (decision.afterNow) return undefined;
  if (decision.pinned) return PINNED_TIER;
  if (!decision.keep) return EXPIRED_TIER;
  return decision.tier ?? KEPT_TIER;
}

/** Days after which S3 removes objects tagged `expired` (counted, as S3 does, from their creation). */
export const EXPIRED_AFTER_DAYS = 1;
/** Days a removed object's bytes stay recoverable as a noncurrent version in a versioned bucket. */
export const EXPIRED_NONCURRENT_DAYS = 7;

export interface LifecycleTransition {
  readonly storageClass: 'STANDARD_IA' | 'GLACIER_IR';
  /** Days after the object's creation. */
  readonly afterDays: number;
}

/**
 * One S3 lifecycle rule, in plain terms, for the stack to turn into a bucket rule: objects whose
 * tag `tagKey` equals `tagValue` (under the backups' prefix) move to cheaper storage after
 * `transitions[i].afterDays` days and are removed after `expirationDays` (current version) and
 * `noncurrentVersionExpirationDays` (older versions), when given.
 */
export interface LifecycleRuleDescription {
  readonly id: string;
  readonly tagKey: typeof TIER_TAG;
  readonly tagValue: TierTagValue;
  readonly expirationDays?: number;
  readonly noncurrentVersionExpirationDays?: number;
  readonly transitions: readonly LifecycleTransition[];
}

/** How long a tier's backups live when backups run at least daily. */
function expectedLifetimeDays(policy: RetentionPolicy, tier: RetentionTier): number {
  const periodDays: Record<RetentionTier, number> = {
    last: 1,
    daily: 1,
    weekly: 7,
    monthly: 30,
    yearly: 365,
  };
  return tierCount(policy, tier) * periodDays[tier];
}

/**
 * The S3 lifecycle rules that carry out `policy` on the tier tags the record step sets:
 *
 * - `expired`: removed `EXPIRED_AFTER_DAYS` after creation (so at once for any backup old enough
 *   to leave the policy), older versions `EXPIRED_NONCURRENT_DAYS` later. Only the retention
 *   function ever expires a backup: kept tiers have no expiration by age, so when backups stop,
 *   the last ones stay (as with `pgferry prune`), and untagged objects are never expired.
 * - one rule per kept tier whose count is not 0, with transitions only where that tier's backups
 *   live long enough to pay for the storage class's minimum duration: STANDARD_IA after 30 days
 *   when they live 60 days or more, GLACIER_IR after 90 days when they live 180 days or more
 *   (lifetimes assume at least daily backups: keepWeekly × 7 days, keepMonthly × 30, …).
 *
 * `others` are the policies some databases set for themselves. The rules act on tier tags
 * bucket-wide (a rule per database would cost up to six of the bucket's 1,000 rules each), so a
 * tier's transitions are those its shortest-lived keeper can pay for: no backup is moved to a
 * storage class it leaves before that class's minimum duration is over. The tags themselves —
 * what is kept and what expires — follow each database's own policy.
 */
export function lifecycleRulesFor(
  policy: RetentionPolicy,
  others: readonly RetentionPolicy[] = [],
): LifecycleRuleDescription[] {
  const rules: LifecycleRuleDescription[] = [
    {
      id: `pgferry-${EXPIRED_TIER}`,
      tagKey: TIER_TAG,
      tagValue: EXPIRED_TIER,
      expirationDays: EXPIRED_AFTER_DAYS,
      noncurrentVersionExpirationDays: EXPIRED_NONCURRENT_DAYS,
      transitions: [],
    },
  ];
  const policies = [policy, ...others];
  for (const tier of RETENTION_TIERS) {
    const keepers = policies.filter((p) => tierCount(p, tier) > 0);
    if (keepers.length === 0) continue;
    const lifetime = Math.min(...keepers.map((p) => expectedLifetimeDays(p, tier)));
    const transitions: LifecycleTransition[] = [];
    if (lifetime >= 60) transitions.push({ storageClass: 'STANDARD_IA', afterDays: 30 });
    if (lifetime >= 180) transitions.push({ storageClass: 'GLACIER_IR', afterDays: 90 });
    rules.push({ id: `pgferry-${tier}`, tagKey: TIER_TAG, tagValue: tier, transitions });
  }
  return rules;
}
