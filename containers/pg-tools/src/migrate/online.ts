/**
 * An online migration's logical replication: the slot whose exported snapshot the copy is made at,
 * the subscription that applies the source's changes made since, the catch-up, the cutover (the
 * source frozen, its last change applied, the target checked against it), and the undoing of all
 * of it after a failure.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import type { MigrateDatabasePlan, OnlineCutover, TableRowCount } from '../../../../core/contracts';
import { errorMessage, PgferryError } from '../../../../core/errors';
import type { AnalyzeAsLoaded } from '../../../../core/postgres/admin';
import { connectPg, endQuietly, withClient } from '../../../../core/postgres/connect';
import { countRows, objectCounts, sequenceStates } from '../../../../core/postgres/inspect';
import {
  createPublication,
  createSentinel,
  createSlotWithSnapshot,
  createSubscription,
  dropPublicationAndSlot,
  dropSentinel,
  dropSubscription,
  sentinelArrived,
  sentinelTable,
  setSequences,
  slotLag,
  subscriptionApplyErrors,
  writeSentinel,
} from '../../../../core/postgres/logical-replication';
import {
  allowWrites,
  endOtherSessions,
  freezeDatabase,
  thawDatabase,
} from '../../../../core/postgres/read-only';
import { changedTables, type TableVersion, tableVersions } from '../../../../core/postgres/snapshot-guard';
import { throttled } from '../../../../core/task-progress';
import { type RestoreProgress, stopIfInterrupted } from '../run';
import { analyzeTarget, type Checks, type SourceState, verify } from './checks';
import type { Context } from './context';

/** The target is close enough behind to freeze the source: at most this many WAL bytes… */
export const CUTOVER_LAG_BYTES = 8 * 1024 * 1024;
/** …and its newest applied change at most this old. */
export const CUTOVER_LAG_SECONDS = 2;
/** How often the catch-up reads the lag. */
const LAG_POLL_MS = 250;
/** How long the subscription may take to connect to the slot before the migration gives up. */
const SUBSCRIBER_CONNECT_MS = 30_000;
/** How long the cutover waits for the target to apply the source's last changes. */
const CUTOVER_APPLY_TIMEOUT_MS = 60_000;

export interface OnlineState {
  /** The publication's, slot's and subscription's name. */
  name: string;
  /** Tables given REPLICA IDENTITY FULL, to be reset. */
  identityFull: string[];
  publication?: boolean;
  slot?: boolean;
  subscription?: boolean;
  /** The cutover's sentinel table (`sentinelTable`), on the source and on the target. */
  sentinel?: boolean;
  frozen: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A WAL position (`16/B374D848`) as a number of bytes. */
function lsnBytes(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/**
 * The publication (every table), then the slot with its exported snapshot, whose id is returned
 * with the replication connection that holds it: the caller keeps that open until pg_dump has
 * imported the snapshot.
 */
export async function startReplication(
  ctx: Context,
  db: MigrateDatabasePlan,
  observer: Client,
  online: OnlineState,
): Promise<{ snapshot: string; replication: Client }> {
  online.identityFull = await createPublication(observer, online.name, {
    replicaIdentityFull: ctx.plan.request.replicaIdentityFull,
  });
  online.publication = true;
  const replication = await connectPg(db.source, ctx.sourcePassword, undefined, 'database');
  try {
    const slot = await createSlotWithSnapshot(replication, online.name, ctx.plan.sourceServer.major);
    online.slot = true;
    ctx.deps.onPhase?.(`slot ${online.name} at ${slot.consistentPoint}`);
    return { snapshot: slot.snapshot, replication };
  } catch (err) {
    await endQuietly(replication);
    throw err;
  }
}

/**
 * After the copy: the sentinel created on both sides, the target subscribes to the slot and
 * applies the changes made since the snapshot until it is close behind; then the cutover: the
 * source frozen and its sessions ended, the sentinel's row written on the source and waited for on
 * the target (then everything committed before it is applied there), the sentinel dropped, the
 * sequences set, the schema compared with the snapshot's (DDL meanwhile stops the migration), the
 * target verified against the frozen source, and the subscription, publication and slot dropped.
 * The source stays frozen: the finish step decides when it is unfrozen.
 */
export async function replicateAndCutOver(
  ctx: Context,
  db: MigrateDatabasePlan,
  online: OnlineState,
  opts: {
    observer: Client;
    atSnapshot: Map<number, TableVersion>;
    state: SourceState;
    tables: TableRowCount[];
    progress: RestoreProgress;
    /** Gives the target's tables their autovacuum back (once analyzed, before the catch-up). */
    releaseAutovacuum: () => Promise<void>;
    /** The tables analyzed as their load ended. */
    early?: AnalyzeAsLoaded;
  },
): Promise<{ checks: Checks; cutover: OnlineCutover }> {
  const { progress, observer, atSnapshot } = opts;
  return withClient(db.target, ctx.targetPassword, async (target) => {
    await progress.timed('subscribe', async () => {
      // Before the subscription, which must find the table on the target and in the publication.
      // In one transaction: none of it exists if it fails (a schema of that name, never ours, stays).
      await createSentinel(observer, online.name, true);
      online.sentinel = true; // before the target's: a failure there still drops both
      await createSentinel(target, online.name, false);
      online.subscription = true; // before: a failure half-way still tries to drop it
      await createSubscription(target, {
        name: online.name,
        source: db.source,
        sourcePassword: ctx.sourcePassword,
      });
    });
    await progress.timed('analyze', () => analyzeTarget(ctx, db, opts.early));
    // The catch-up applies the source's updates and deletes: autovacuum is needed from here on.
    await opts.releaseAutovacuum();
    const lagAtFreeze = await progress.timed('catchUp', () =>
      catchUp(ctx, db, online, observer, target, atSnapshot),
    );
    const changedSchema = async (source: Client) =>
      schemaChanges(atSnapshot, await tableVersions(source), online.name);

    return progress.timed('cutover', async () => {
      const admin = await connectPg(db.source, ctx.sourcePassword);
      try {
        await allowWrites(admin);
        online.frozen = true; // before: a failure of the statement itself still thaws
        await freezeDatabase(admin, db.source.database);
        const frozenAt = new Date().toISOString();
        // Sessions connected before the freeze would go on writing: they are ended (a pool
        // reconnects, read-only). What they committed is before the position read next.
        const sessionsEnded = await endOtherSessions(admin, db.source.database);
        // The sentinel's row, committed after everything else the source will ever send (this
        // session alone may write): on the target, it proves all of that applied.
        const token = randomUUID();
        await writeSentinel(admin, online.name, token);
        const { currentLsn: cutoverLsn } = await slotLag(admin, online.name);
        await waitApplied(ctx, online, target, token, async () =>
          refuseSchemaChanges(await changedSchema(admin)),
        );
        const appliedAt = Date.now();
        // Gone before the checks: the target is to be the source's database, nothing more.
        await dropSentinel(target, online.name);
        await dropSentinel(admin, online.name);
        online.sentinel = false;
        const objects = await objectCounts(admin);
        refuseSchemaChanges([
          ...(await changedSchema(admin)),
          ...[...new Set([...objects.keys(), ...opts.state.objects.keys()])]
            .filter((kind) => (objects.get(kind) ?? 0) !== (opts.state.objects.get(kind) ?? 0))
            .map(
              (kind) =>
                `${objects.get(kind) ?? 0} ${kind} objects (${opts.state.objects.get(kind) ?? 0} at the copy)`,
            ),
        ]);
        const sequences = await sequenceStates(admin);
        await setSequences(target, sequences.values());
        const counted = await countRows(admin, opts.tables);
        const checks = await verify(
          ctx,
          db,
          {
            ...opts.state,
            sequences,
            objects,
            tables: counted.map(({ schema, name, restoredRows }) => ({ schema, name, rows: restoredRows })),
          },
          progress,
          false,
        );
        const verifiedAt = Date.now();
        await dropSubscription(target, online.name);
        online.subscription = false;
        await dropPublicationAndSlot(admin, online.name);
        online.publication = online.slot = false;
        const at = (t: number) => (t - Date.parse(frozenAt)) / 1000;
        return {
          checks,
          cutover: {
            replication: online.name,
            replicaIdentityFull: online.identityFull,
            lagAtFreeze,
            cutoverLsn,
            frozenAt,
            sessionsEnded,
            cutoverAt: new Date().toISOString(),
            steps: { applied: at(appliedAt), verified: at(verifiedAt), replicationDropped: at(Date.now()) },
          },
        };
      } finally {
        await endQuietly(admin);
      }
    });
  });
}

/**
 * Reads the lag until the target is within `CUTOVER_LAG_BYTES` and `CUTOVER_LAG_SECONDS` of the
 * source, reporting it; stops on apply errors on the target, a subscription that never connects,
 * and DDL on the source. Returns the lag it ended at.
 */
async function catchUp(
  ctx: Context,
  db: MigrateDatabasePlan,
  online: OnlineState,
  observer: Client,
  target: Client,
  atSnapshot: Map<number, TableVersion>,
): Promise<{ bytes: number; seconds: number }> {
  const report = throttled(ctx.deps.onProgress);
  const started = Date.now();
  // The source's WAL position over time: the lag in seconds is the age of the oldest position the
  // target has not confirmed.
  let samples: { at: number; lsn: bigint }[] = [];
  let start: bigint | undefined;
  let everActive = false;
  let lastSchemaCheck = Date.now();
  for (;;) {
    stopIfInterrupted(ctx.deps.signal);
    const lag = await slotLag(observer, online.name);
    const now = Date.now();
    const current = lsnBytes(lag.currentLsn);
    const confirmed = lag.confirmedLsn ? lsnBytes(lag.confirmedLsn) : 0n;
    start ??= confirmed;
    samples.push({ at: now, lsn: current });
    samples = samples.filter((s, i) => s.lsn > confirmed || i === samples.length - 1);
    const behind = samples.find((s) => s.lsn > confirmed);
    const seconds = behind ? (now - behind.at) / 1000 : 0;
    report({
      step: 'catchUp',
      doneBytes: Number(confirmed > start ? confirmed - start : 0n),
      totalBytes: Number(current > start ? current - start : 0n),
      lagBytes: lag.lagBytes,
      lagSeconds: seconds,
      database: db.source.database,
    });
    // DDL first: it is also what makes the apply fail (a column the target lacks).
    const applyErrors = await subscriptionApplyErrors(target, online.name, ctx.plan.targetServer.major);
    if (applyErrors > 0 || now - lastSchemaCheck > 2000) {
      lastSchemaCheck = now;
      refuseSchemaChanges(schemaChanges(atSnapshot, await tableVersions(observer), online.name));
    }
    if (applyErrors > 0) throw applyFailure(applyErrors);
    everActive ||= lag.active;
    if (everActive && lag.lagBytes <= CUTOVER_LAG_BYTES && seconds <= CUTOVER_LAG_SECONDS) {
      return { bytes: lag.lagBytes, seconds };
    }
    if (!everActive && now - started > SUBSCRIBER_CONNECT_MS) {
      throw new PgferryError(
        'MigrateFailed',
        `the target's subscription did not connect to the source within ${SUBSCRIBER_CONNECT_MS / 1000}s: ` +
          `the target server must reach the source at ${db.source.host}:${db.source.port} (see the target server's log)`,
      );
    }
    await sleep(LAG_POLL_MS);
  }
}

function applyFailure(errors: number): PgferryError {
  return new PgferryError(
    'MigrateFailed',
    `the target failed to apply the source's changes (${errors} apply error${errors > 1 ? 's' : ''}: a row written on ` +
      "the target that conflicts with the source's; the target server's log names it)",
  );
}

/** Stops the migration when the source's schema changed since the copy: `changes` names how. */
function refuseSchemaChanges(changes: string[]): void {
  if (!changes.length) return;
  throw new PgferryError(
    'MigrateFailed',
    `the source's schema changed during the online migration: ${changes.slice(0, 5).join(', ')}` +
      `${changes.length > 5 ? ', …' : ''}; logical replication does not carry DDL, so the target would differ: ` +
      'migrate again when no DDL runs',
  );
}

/**
 * Waits until the target has the sentinel's row `token`, written on the source after the freeze:
 * everything committed before it is applied.
 */
async function waitApplied(
  ctx: Context,
  online: OnlineState,
  target: Client,
  token: string,
  /** Throws when the schema changed: DDL is what most often makes the apply fail. */
  checkSchema: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + CUTOVER_APPLY_TIMEOUT_MS;
  while (!(await sentinelArrived(target, online.name, token))) {
    stopIfInterrupted(ctx.deps.signal);
    const errors = await subscriptionApplyErrors(target, online.name, ctx.plan.targetServer.major);
    if (errors > 0) {
      await checkSchema();
      throw applyFailure(errors);
    }
    if (Date.now() > deadline) {
      throw new PgferryError(
        'MigrateFailed',
        `the target did not apply the source's last changes within ${CUTOVER_APPLY_TIMEOUT_MS / 1000}s of the freeze: ` +
          `the row written to ${sentinelTable(online.name)} after the freeze is not on the target ` +
          "(a session on the target holding a row the source changed, or a target too slow; the target server's log may name it)",
      );
    }
    await sleep(20);
  }
}

/**
 * Tables created, dropped, altered or rewritten since the copy's snapshot, named; but for the
 * migration's own (the sentinel, in the schema `ours`).
 */
function schemaChanges(
  atSnapshot: Map<number, TableVersion>,
  now: Map<number, TableVersion>,
  ours: string,
): string[] {
  return [
    ...changedTables(atSnapshot, now, atSnapshot.keys()).map((c) => `${c.schema}.${c.name} was ${c.change}`),
    ...[...now.entries()]
      .filter(([oid, t]) => !atSnapshot.has(oid) && t.schema !== ours)
      .map(([, t]) => `${t.schema}.${t.name} was created`),
  ];
}

/**
 * After a failure: the subscription dropped (before the target database can be), the publication
 * and slot dropped (a forgotten slot keeps WAL until the source's disk fills), the replica
 * identities reset and the source unfrozen. Returns what could not be undone, for the message.
 */
export async function undoReplication(
  ctx: Context,
  db: MigrateDatabasePlan,
  online: OnlineState,
  created: boolean,
): Promise<string> {
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    await fn().catch((err: unknown) => problems.push(`${what}: ${errorMessage(err)}`));
  };
  if ((online.subscription || online.sentinel) && created) {
    await attempt('dropping the subscription', () =>
      withClient(db.target, ctx.targetPassword, async (c) => {
        await dropSubscription(c, online.name);
        await dropSentinel(c, online.name);
      }),
    );
  }
  if (online.publication || online.slot || online.frozen || online.identityFull.length || online.sentinel) {
    await attempt('cleaning up the source', () =>
      withClient(db.source, ctx.sourcePassword, async (c) => {
        await allowWrites(c);
        if (online.frozen) await thawDatabase(c, db.source.database, db.readOnlySetting);
        if (online.sentinel) await dropSentinel(c, online.name);
        await dropPublicationAndSlot(c, online.name);
      }),
    );
  }
  return problems.length
    ? ` (NOT UNDONE: ${problems.join('; ')}; drop the slot with SELECT pg_drop_replication_slot('${online.name}'))`
    : ' (the publication and replication slot were dropped)';
}
