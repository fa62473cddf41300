/**
 * What is checked on the target before a database's migration is done (the result's `checks`):
 * its planner statistics (ANALYZE), then its rows, sequences and objects compared with the
 * source's at the snapshot.
 */
import type {
  DatabaseProperties,
  MigrateDatabasePlan,
  MigrateDatabaseResult,
  Requirements,
  TableRowCount,
} from '../../../../core/contracts';
import { PgferryError } from '../../../../core/errors';
import { type AnalyzeAsLoaded, analyzeInParallel } from '../../../../core/postgres/admin';
import type { TableDataRows } from '../../../../core/postgres/archive';
import { connectPg, withClient } from '../../../../core/postgres/connect';
import {
  countRows,
  describeSequence,
  objectCounts,
  type SequenceState,
  sequenceCaughtUp,
  sequenceStates,
} from '../../../../core/postgres/inspect';
import type { TableVersion } from '../../../../core/postgres/snapshot-guard';
import type { RestoreProgress } from '../run';
import type { Context } from './context';

export type Checks = MigrateDatabaseResult['checks'];

/** The source as the dump's snapshot sees it (sequences: as read just before pg_dump started). */
export interface SourceState {
  requires: Requirements;
  properties: DatabaseProperties;
  sequences: Map<string, SequenceState>;
  objects: Map<string, number>;
}

/**
 * The target's planner statistics, on as many sessions as the post-data phase's jobs: one
 * session's database-wide ANALYZE left all but one core idle.
 */
export function analyzeTarget(
  ctx: Context,
  db: MigrateDatabasePlan,
  early: AnalyzeAsLoaded | undefined,
): Promise<void> {
  return analyzeInParallel(() => connectPg(db.target, ctx.targetPassword), ctx.plan.jobs, early);
}

export async function verify(
  ctx: Context,
  db: MigrateDatabasePlan,
  state: SourceState & {
    tables: TableRowCount[];
    /**
     * The rows the copy path's COPYs loaded, by `tableKey`: exactly the rows now in each table
     * (fresh tables, no triggers or rules before the post-data), so the target is not read again.
     */
    loaded?: Map<string, number>;
    /** The tables analyzed as their load ended. */
    early?: AnalyzeAsLoaded;
  },
  progress: RestoreProgress,
  /** Online, the target is analyzed while it catches up, before the source is frozen. */
  analyzeFirst = true,
): Promise<Checks> {
  return withClient(db.target, ctx.targetPassword, async (target) => {
    const { loaded } = state;
    // Without the COPYs' tags, the rows are counted on this session while the others analyze:
    // the counts read what the load wrote, which ANALYZE does not change.
    const counted = loaded
      ? Promise.resolve(
          state.tables.map((t) => ({ ...t, restoredRows: loaded.get(tableKey(t.schema, t.name)) ?? 0 })),
        )
      : countRows(target, state.tables);
    counted.catch(() => undefined); // awaited below; never unhandled
    if (analyzeFirst) await progress.timed('analyze', () => analyzeTarget(ctx, db, state.early));
    return await progress.timed('verify', async () => {
      const rowCounts: Checks['rowCounts'] = await counted;
      const targetSequences = await sequenceStates(target);
      const sequences = [...state.sequences.entries()].map(([key, s]) => {
        const target = targetSequences.get(key);
        return {
          schema: s.schema,
          name: s.name,
          source: describeSequence(s),
          target: target ? describeSequence(target) : 'missing',
          caughtUp: target !== undefined && sequenceCaughtUp(s, target),
          descending: s.descending,
        };
      });
      const targetObjects = await objectCounts(target);
      const kinds = [...new Set([...state.objects.keys(), ...targetObjects.keys()])].sort();
      const objectCounts_: Checks['objectCounts'] = kinds.map((kind) => ({
        kind,
        source: state.objects.get(kind) ?? 0,
        target: targetObjects.get(kind) ?? 0,
      }));
      const differences = [
        ...rowCounts
          .filter((t) => t.rows !== t.restoredRows)
          .map((t) => `${t.schema}.${t.name} has ${t.restoredRows} rows (source ${t.rows})`),
        ...sequences
          .filter((s) => !s.caughtUp)
          .map(
            (s) =>
              `sequence ${s.schema}.${s.name} is ${s.target}, ${s.descending ? 'above' : 'below'} the source's ` +
              `${s.source} at the snapshot`,
          ),
        ...objectCounts_
          .filter((o) => o.source !== o.target)
          .map((o) => `${o.target} ${o.kind} objects (source ${o.source})`),
      ];
      if (differences.length) {
        throw new PgferryError(
          'MigrateFailed',
          `the target differs from the source: ${differences.slice(0, 5).join(', ')}${differences.length > 5 ? ', …' : ''}`,
        );
      }
      return {
        rowCounts,
        sequences: sequences.map(({ schema, name, source, target }) => ({ schema, name, source, target })),
        objectCounts: objectCounts_,
        analyzed: true,
        restoredRowsFrom: loaded ? 'copy' : 'target',
      };
    });
  });
}

/**
 * The rows each table's COPYs loaded (their command tags, by TABLE DATA dumpId), keyed by the
 * table's name as `rowCounts` gives it.
 */
export function loadedRows(
  dumped: TableDataRows[],
  catalog: Map<number, TableVersion>,
  loaded: Map<number, number>,
): Map<string, number> {
  return new Map(
    dumped.map((t) => {
      const known = catalog.get(t.oid);
      return [tableKey(known?.schema ?? t.schema, known?.name ?? t.name), loaded.get(t.dumpId) ?? 0];
    }),
  );
}

const tableKey = (schema: string, name: string) => JSON.stringify([schema, name]);
