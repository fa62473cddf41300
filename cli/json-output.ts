/**
 * The shapes of the catalog commands' `--json` output (list, status, show, prune), as zod schemas:
 * the code builds its output through these types, docs/user-guide.md documents them, and the tests
 * parse real output with them (strict: no key more, none missing — an absent value is `null`).
 * backup, restore, verify and migrate print their stored manifest or report (core/contracts/).
 */
import { z } from 'zod';
import { BACKUP_ORIGINS } from '../core/contracts';
import { RETENTION_TIERS, type RetentionDecision } from '../core/retention';

const TierSchema = z.enum(RETENTION_TIERS);

/** How the retention policy treats a backup now (`list`'s TIER column, `show`'s retention). */
export const RetentionJsonSchema = z
  .object({
    /** The longest-lived rule keeping it; null when no rule keeps it (or it is dated after now). */
    tier: TierSchema.nullable(),
    /** Whether the policy keeps it (false: `prune` deletes it). */
    keep: z.boolean(),
    /** Every rule keeping it, shortest-lived first, with the period it is the newest of. */
    reasons: z.array(z.object({ tier: TierSchema, bucket: z.string() }).strict()),
    /** Dated after now (a wrong clock): kept, counted by no rule. */
    afterNow: z.boolean(),
    /** Pinned (`pgferry pin`): kept whatever the rules say. */
    pinned: z.boolean(),
  })
  .strict();
export type RetentionJson = z.infer<typeof RetentionJsonSchema>;

/** A retention decision as JSON (`null` where there is none). */
export function retentionJson(decision: RetentionDecision | undefined): RetentionJson | null {
  if (!decision) return null;
  return {
    tier: decision.tier ?? null,
    keep: decision.keep,
    reasons: decision.reasons.map(({ tier, bucket }) => ({ tier, bucket })),
    afterNow: decision.afterNow,
    pinned: decision.pinned,
  };
}

/**
 * `list`'s TIER column: `after now`, `pinned`, the tier, `kept` (a safety or migration backup
 * within its days), or `expired`.
 */
export function tierLabel(decision: RetentionDecision | undefined): string {
  if (!decision) return '-';
  if (decision.afterNow) return 'after now';
  if (decision.pinned) return 'pinned';
  if (decision.tier) return decision.tier;
  return decision.keep ? 'kept' : 'expired';
}

/** What `list --json` adds to each manifest, under `catalog`: the table's other columns. */
export const ListedCatalogSchema = z
  .object({
    /** The catalog name it is filed under (the NAME column). */
    name: z.string(),
    /** Where it came from (ORIGIN): the manifest's `origin`, `manual` where it has none. */
    origin: z.enum(BACKUP_ORIGINS),
    /** Bytes stored, every object of the backup (SIZE). */
    storedBytes: z.number().int().nonnegative(),
    retention: RetentionJsonSchema.nullable(),
    /** Its latest verification (VERIFIED), or null when it was never verified. */
    verification: z
      .object({ status: z.enum(['passed', 'failed']), finishedAt: z.string() })
      .strict()
      .nullable(),
  })
  .strict();
export type ListedCatalog = z.infer<typeof ListedCatalogSchema>;

const BackupAgeSchema = z
  .object({ id: z.string(), startedAt: z.string(), finishedAt: z.string(), ageSeconds: z.number() })
  .strict();

/** `status --json`. */
export const StatusJsonSchema = z
  .object({
    store: z.string(),
    now: z.string(),
    databases: z.array(
      z
        .object({
          database: z.string(),
          /** The newest complete backup, or null when there is none. */
          newest: BackupAgeSchema.nullable(),
          /** The newest backup whose latest verification passed, or null. */
          newestVerified: BackupAgeSchema.extend({ verifiedAt: z.string() }).strict().nullable(),
          unreadable: z.array(
            z
              .object({ id: z.string(), startedAt: z.string(), folder: z.string(), problem: z.string() })
              .strict(),
          ),
          datedAfterNow: z.array(
            z.object({ id: z.string(), startedAt: z.string(), finishedAt: z.string() }).strict(),
          ),
          /** Why it fails `status` (empty when it does not). */
          problems: z.array(z.string()),
        })
        .strict(),
    ),
  })
  .strict();
export type StatusJson = z.infer<typeof StatusJsonSchema>;
