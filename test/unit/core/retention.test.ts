import fc from 'fast-check';
import {
  DEFAULT_RETENTION,
  decideRetention,
  EXPIRED_TIER,
  formatRetentionPolicy,
  isoWeek,
  KEPT_TIER,
  lifecycleRulesFor,
  PINNED_TIER,
  parseRetentionPolicy,
  RETENTION_TIERS,
  type RetentionCandidate,
  type RetentionPolicy,
  RetentionPolicySchema,
  retentionPolicy,
  retentionPolicyFromEnv,
  tierCount,
  tierTagFor,
} from '../../../core/retention';

const START = Date.parse('2023-01-01T00:00:00Z');
const END = Date.parse('2026-06-30T00:00:00Z');

/** Backups over three and a half years, often several on one day, with unique ids. */
const backupsArb = fc
  .uniqueArray(
    fc.record({
      id: fc.stringMatching(/^[0-9a-f]{6}$/),
      // Half the time clustered into 40 days, so that days and weeks hold several backups.
      ms: fc.oneof(
        fc.integer({ min: START, max: END }),
        fc.integer({ min: END - 40 * 86_400_000, max: END }),
      ),
    }),
    { selector: (b) => b.id, maxLength: 80 },
  )
  .map((list) => list.map(({ id, ms }): RetentionCandidate => ({ id, time: new Date(ms).toISOString() })));

const policyArb: fc.Arbitrary<RetentionPolicy> = fc.record({
  keepLast: fc.integer({ min: 1, max: 10 }),
  keepDaily: fc.integer({ min: 0, max: 10 }),
  keepWeekly: fc.integer({ min: 0, max: 6 }),
  keepMonthly: fc.integer({ min: 0, max: 14 }),
  keepYearly: fc.integer({ min: 0, max: 3 }),
  keepSafetyDays: fc.integer({ min: 0, max: 40 }),
});

/** "now" at or after every backup. */
const nowArb = fc.integer({ min: 0, max: 400 * 86_400_000 }).map((extra) => new Date(END + extra));

const newestOf = (backups: readonly RetentionCandidate[]) =>
  [...backups].sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? 1 : -1))[0];

describe('decideRetention: properties', () => {
  test('the newest complete backup is always kept', () => {
    fc.assert(
      fc.property(
        backupsArb.filter((b) => b.length > 0),
        policyArb,
        nowArb,
        (backups, policy, now) => {
          const kept = decideRetention(backups, policy, now).filter((d) => d.keep);
          expect(kept.map((d) => d.id)).toContain(newestOf(backups).id);
        },
      ),
    );
  });

  test('at least keepLast backups are kept (all of them when there are fewer)', () => {
    fc.assert(
      fc.property(backupsArb, policyArb, nowArb, (backups, policy, now) => {
        const kept = decideRetention(backups, policy, now).filter((d) => d.keep);
        expect(kept.length).toBeGreaterThanOrEqual(Math.min(policy.keepLast, backups.length));
      }),
    );
  });

  test('no rule keeps more backups than its count, and a tier holds only backups its rule keeps', () => {
    fc.assert(
      fc.property(backupsArb, policyArb, nowArb, (backups, policy, now) => {
        const decisions = decideRetention(backups, policy, now);
        for (const tier of RETENTION_TIERS) {
          const keptByRule = decisions.filter((d) => d.reasons.some((r) => r.tier === tier));
          expect(keptByRule.length).toBeLessThanOrEqual(tierCount(policy, tier));
          for (const d of decisions.filter((x) => x.tier === tier)) {
            expect(d.reasons.map((r) => r.tier)).toContain(tier);
          }
        }
      }),
    );
  });

  test('a backup is kept exactly when a rule keeps it, and its tier is the longest-lived of those rules', () => {
    fc.assert(
      fc.property(backupsArb, policyArb, nowArb, (backups, policy, now) => {
        for (const d of decideRetention(backups, policy, now)) {
          expect(d.keep).toBe(d.reasons.length > 0);
          const longest = [...RETENTION_TIERS].reverse().find((t) => d.reasons.some((r) => r.tier === t));
          expect(d.tier).toBe(longest);
        }
      }),
    );
  });

  test('the result is deterministic: the same for the same backups in any order', () => {
    fc.assert(
      fc.property(
        backupsArb.chain((b) => fc.tuple(fc.constant(b), fc.shuffledSubarray(b, { minLength: b.length }))),
        policyArb,
        nowArb,
        ([backups, shuffled], policy, now) => {
          expect(decideRetention(shuffled, policy, now)).toEqual(decideRetention(backups, policy, now));
        },
      ),
    );
  });

  test('adding an older backup never removes a newer one, nor changes its tier', () => {
    fc.assert(
      fc.property(
        backupsArb.filter((b) => b.length > 0),
        fc.integer({ min: 1, max: 3 * 365 * 86_400_000 }),
        policyArb,
        nowArb,
        (backups, before, policy, now) => {
          const oldest = Math.min(...backups.map((b) => Date.parse(b.time)));
          const older = { id: 'older-one', time: new Date(oldest - before).toISOString() };
          const without = decideRetention(backups, policy, now);
          const withOlder = decideRetention([...backups, older], policy, now).filter(
            (d) => d.id !== older.id,
          );
          expect(withOlder).toEqual(without);
        },
      ),
    );
  });
});

describe('decideRetention: examples', () => {
  const now = new Date('2026-03-15T12:00:00Z');
  const at = (time: string, id = time) => ({ id, time });

  test("a backup's tier is the longest-lived rule that keeps it", () => {
    const [newest, older] = decideRetention(
      [at('2026-03-15T02:00:00Z'), at('2026-03-14T02:00:00Z')],
      DEFAULT_RETENTION,
      now,
    );
    expect(newest.tier).toBe('yearly');
    expect(newest.reasons.map((r) => `${r.tier} ${r.bucket}`)).toEqual([
      'last #1',
      'daily 2026-03-15',
      'weekly 2026-W11',
      'monthly 2026-03',
      'yearly 2026',
    ]);
    // The same ISO week, month and year as the newest: only last and daily keep it.
    expect(older.reasons.map((r) => `${r.tier} ${r.bucket}`)).toEqual(['last #2', 'daily 2026-03-14']);
    expect(older.tier).toBe('daily');
  });

  test('the newest backup of a day represents it; periods without backups are not counted', () => {
    const decisions = decideRetention(
      [at('2026-03-15T09:00:00Z'), at('2026-03-15T03:00:00Z'), at('2026-01-02T00:00:00Z')],
      { keepLast: 1, keepDaily: 2, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepSafetyDays: 30 },
      now,
    );
    expect(decisions.map((d) => [d.time.slice(0, 13), d.keep])).toEqual([
      ['2026-03-15T09', true],
      ['2026-03-15T03', false],
      ['2026-01-02T00', true], // the second day with a backup, though 72 days back
    ]);
  });

  test('backups newer than now are kept and count toward no rule', () => {
    const decisions = decideRetention(
      [at('2026-03-16T00:00:00Z'), at('2026-03-15T00:00:00Z'), at('2026-03-14T00:00:00Z')],
      { keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepSafetyDays: 30 },
      now,
    );
    expect(decisions.map((d) => [d.keep, d.afterNow, d.tier])).toEqual([
      [true, true, undefined],
      [true, false, 'last'],
      [false, false, undefined],
    ]);
  });

  test('backups at the same time are ordered by id, the greater first', () => {
    const decisions = decideRetention(
      [at('2026-03-15T00:00:00Z', 'a'), at('2026-03-15T00:00:00Z', 'b')],
      { keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, keepSafetyDays: 30 },
      now,
    );
    expect(decisions.map((d) => [d.id, d.keep])).toEqual([
      ['b', true],
      ['a', false],
    ]);
  });
});

describe('origin and pin', () => {
  const now = new Date('2026-03-15T12:00:00Z');
  const policy = {
    keepLast: 1,
    keepDaily: 0,
    keepWeekly: 0,
    keepMonthly: 0,
    keepYearly: 0,
    keepSafetyDays: 7,
  };
  const backup = (time: string, id: string, extra: Partial<RetentionCandidate> = {}): RetentionCandidate => ({
    id,
    time,
    ...extra,
  });

  test('a safety or migration backup counts toward no rule and is kept keepSafetyDays', () => {
    const decisions = decideRetention(
      [
        backup('2026-03-15T10:00:00Z', 'safety-new', { origin: 'safety' }),
        backup('2026-03-14T00:00:00Z', 'scheduled', { origin: 'scheduled' }),
        backup('2026-03-01T00:00:00Z', 'migration-old', { origin: 'migration' }),
        backup('2026-03-10T00:00:00Z', 'migration-recent', { origin: 'migration' }),
      ],
      policy,
      now,
    );
    const byId = Object.fromEntries(decisions.map((d) => [d.id, d]));
    // The newest backup is the safety one, yet keepLast=1 keeps the scheduled one.
    expect(byId.scheduled).toMatchObject({ keep: true, tier: 'last', shortLived: false });
    expect(byId['safety-new']).toMatchObject({ keep: true, tier: undefined, shortLived: true });
    expect(byId['migration-recent']).toMatchObject({ keep: true, shortLived: true });
    expect(byId['migration-old']).toMatchObject({ keep: false, shortLived: true });
    expect(tierTagFor(byId['safety-new'])).toBe(KEPT_TIER);
    expect(tierTagFor(byId['migration-old'])).toBe(EXPIRED_TIER);
  });

  test('a pinned backup is kept and tagged pinned, and still counts as its origin does', () => {
    const decisions = decideRetention(
      [
        backup('2026-03-15T00:00:00Z', 'newest', { origin: 'set' }),
        backup('2026-03-01T00:00:00Z', 'pinned', { origin: 'manual', pinned: true }),
        backup('2026-02-01T00:00:00Z', 'old-safety', { origin: 'safety', pinned: true }),
        backup('2026-02-02T00:00:00Z', 'unpinned'),
      ],
      policy,
      now,
    );
    const byId = Object.fromEntries(decisions.map((d) => [d.id, d]));
    expect(byId.newest).toMatchObject({ keep: true, tier: 'last' });
    expect(byId.pinned).toMatchObject({ keep: true, pinned: true, tier: undefined });
    expect(byId['old-safety']).toMatchObject({ keep: true, pinned: true });
    expect(byId.unpinned).toMatchObject({ keep: false });
    expect(tierTagFor(byId.pinned)).toBe(PINNED_TIER);
    expect(tierTagFor(byId.unpinned)).toBe(EXPIRED_TIER);
  });

  test('no lifecycle rule selects a pinned or kept backup: S3 neither expires nor moves it', () => {
    const tags = lifecycleRulesFor(DEFAULT_RETENTION).map((rule) => rule.tagValue as string);
    expect(tags).not.toContain(PINNED_TIER);
    expect(tags).not.toContain(KEPT_TIER);
  });

  test('safety=DAYS in a policy text; older configurations without it read the default', () => {
    expect(parseRetentionPolicy('safety=3').keepSafetyDays).toBe(3);
    expect(formatRetentionPolicy(DEFAULT_RETENTION)).toBe(
      'last=7,daily=7,weekly=4,monthly=12,yearly=2,safety=30',
    );
    expect(
      RetentionPolicySchema.parse({ keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0 })
        .keepSafetyDays,
    ).toBe(DEFAULT_RETENTION.keepSafetyDays);
  });
});

test.each([
  ['2026-01-01T00:00:00Z', '2026-W01'], // a Thursday
  ['2024-12-30T00:00:00Z', '2025-W01'], // a Monday in week 1 of the next year
  ['2021-01-03T23:59:59Z', '2020-W53'], // a Sunday in the previous year's week 53
  ['2026-03-15T12:00:00Z', '2026-W11'],
])('ISO week of %s is %s', (time, week) => {
  expect(isoWeek(Date.parse(time))).toBe(week);
});

describe('policies', () => {
  test('keepLast must be at least 1', () => {
    expect(() => retentionPolicy({ keepLast: 0 })).toThrow(/keepLast must be at least 1/);
  });

  test('PGFERRY_RETENTION overrides some counts and keeps the defaults for the rest', () => {
    expect(retentionPolicyFromEnv({ PGFERRY_RETENTION: 'daily=14, yearly=5' })).toEqual({
      ...DEFAULT_RETENTION,
      keepDaily: 14,
      keepYearly: 5,
    });
    expect(retentionPolicyFromEnv({})).toEqual(DEFAULT_RETENTION);
  });

  test('a bad PGFERRY_RETENTION names the variable', () => {
    expect(() => retentionPolicyFromEnv({ PGFERRY_RETENTION: 'hourly=3' })).toThrow(
      /^PGFERRY_RETENTION: not a retention rule: "hourly=3"/,
    );
    expect(() => parseRetentionPolicy('last=0')).toThrow(/keepLast must be at least 1/);
  });
});

describe('lifecycleRulesFor', () => {
  test('the default policy: expired objects go after a day; long-lived tiers move to cheaper storage', () => {
    expect(lifecycleRulesFor(DEFAULT_RETENTION)).toEqual([
      {
        id: 'pgferry-expired',
        tagKey: 'pgferry-tier',
        tagValue: 'expired',
        expirationDays: 1,
        noncurrentVersionExpirationDays: 7,
        transitions: [],
      },
      { id: 'pgferry-last', tagKey: 'pgferry-tier', tagValue: 'last', transitions: [] },
      { id: 'pgferry-daily', tagKey: 'pgferry-tier', tagValue: 'daily', transitions: [] },
      { id: 'pgferry-weekly', tagKey: 'pgferry-tier', tagValue: 'weekly', transitions: [] },
      {
        id: 'pgferry-monthly',
        tagKey: 'pgferry-tier',
        tagValue: 'monthly',
        transitions: [
          { storageClass: 'STANDARD_IA', afterDays: 30 },
          { storageClass: 'GLACIER_IR', afterDays: 90 },
        ],
      },
      {
        id: 'pgferry-yearly',
        tagKey: 'pgferry-tier',
        tagValue: 'yearly',
        transitions: [
          { storageClass: 'STANDARD_IA', afterDays: 30 },
          { storageClass: 'GLACIER_IR', afterDays: 90 },
        ],
      },
    ]);
  });

  test('no kept tier ever expires by age, and tiers with a count of 0 get no rule', () => {
    const rules = lifecycleRulesFor({ ...DEFAULT_RETENTION, keepYearly: 0, keepWeekly: 12 });
    expect(rules.filter((r) => r.tagValue !== 'expired' && r.expirationDays !== undefined)).toEqual([]);
    expect(rules.map((r) => r.tagValue)).toEqual(['expired', 'last', 'daily', 'weekly', 'monthly']);
    expect(rules.find((r) => r.tagValue === 'weekly')?.transitions).toEqual([
      { storageClass: 'STANDARD_IA', afterDays: 30 },
    ]);
  });
});
