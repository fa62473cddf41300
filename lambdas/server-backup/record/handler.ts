import { parsePayload, type ServerBackupOutcome, ServerRecordInputSchema } from '../../../core/contracts';
import { createLogger } from '../../../core/logging';
import { metricsEnabled, SERVER_METRICS, serverMetricLine } from '../../../core/metrics';
import { openStore } from '../../../core/store';
import { recordServerSet } from './record';

const logger = createLogger('pgferry-server-record');
/** CloudWatch metrics (EMF lines on stdout) only on AWS: the local CLI's stdout is its output. */
const publishMetrics = metricsEnabled();

/**
 * Step Functions task: writes the set's manifest after the Map (its results in place of its
 * items) and publishes the server's metrics: the set recorded, its failed databases, and those
 * without a fresh backup. Its output is the set in brief; a failed set then fails the execution.
 */
export async function handler(event: unknown): Promise<ServerBackupOutcome> {
  const input = parsePayload(ServerRecordInputSchema, event, 'server record input');
  const { manifest, outcome, stale } = await recordServerSet(input, { openStore });
  logger.info('recorded', {
    setId: manifest.id,
    status: manifest.status,
    members: manifest.members.length,
    failed: outcome.failed,
    stale,
  });
  const server = input.set.request.name;
  if (publishMetrics && server !== undefined) {
    const line = serverMetricLine(server, new Date(manifest.finishedAt), {
      [SERVER_METRICS.lastSetRecorded]: Math.floor(Date.parse(manifest.finishedAt) / 1000),
      [SERVER_METRICS.databasesFailed]: outcome.failed.length,
      [SERVER_METRICS.databasesStale]: stale.length,
    });
    process.stdout.write(`${line}\n`);
  }
  return outcome;
}
