import { parseExecutionInput, ServerBackupRequestSchema, type ServerSetState } from '../../../core/contracts';
import { type Credentials, credentialsFromEnv, withCredentials } from '../../../core/credentials';
import { createLogger } from '../../../core/logging';
import { metricsEnabled, SERVER_METRICS, serverMetricLine } from '../../../core/metrics';
import { openStore } from '../../../core/store';
import { listServer } from './list';

const logger = createLogger('pgferry-server-list');
/** CloudWatch metrics (EMF lines on stdout) only on AWS: the local CLI's stdout is its output. */
const publishMetrics = metricsEnabled();

/** The Lambda function's entry: the server's password from its secret (or IAM). */
export const handler = (event: unknown): Promise<ServerSetState> =>
  handle(event, credentialsFromEnv(process.env));

/**
 * Step Functions task: lists the server's databases (the execution input is the server backup
 * request) and publishes how many disappeared since its previous set. The server's password,
 * where its connection names no secret, is `credentials.source`.
 */
export async function handle(event: unknown, credentials: Credentials): Promise<ServerSetState> {
  const request = parseExecutionInput(ServerBackupRequestSchema, event, 'server backup request');
  const state = await listServer(request, { openStore, env: withCredentials(process.env, credentials) });
  const { set } = state;
  logger.info('listed', {
    setId: set.setId,
    server: request.name,
    databases: state.members.length,
    disappeared: set.disappeared,
  });
  if (set.disappeared.length) {
    logger.warn('databases disappeared from the server since its previous set', {
      disappeared: set.disappeared,
    });
  }
  if (publishMetrics && request.name !== undefined) {
    const line = serverMetricLine(request.name, new Date(set.startedAt), {
      [SERVER_METRICS.databasesDisappeared]: set.disappeared.length,
    });
    process.stdout.write(`${line}\n`);
  }
  return state;
}
