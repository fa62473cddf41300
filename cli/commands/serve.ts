import { homedir } from 'node:os';
import * as path from 'node:path';
import { type Command, Option } from 'commander';
import { summaryOf } from '../../api/events';
import type { Run } from '../../api/runs';
import type { Credentials } from '../../core/credentials';
import { localPassword } from '../../core/credentials';
import { errorMessage, PgferryError } from '../../core/errors';
import { normaliseStoreUrl, openStore } from '../../core/store';
import { API_TOKEN_ENV, apiToken, authorized, localSecret } from '../api-token';
import { CLI_STOP_SECONDS } from '../interrupts';
import { LocalRunHost } from '../local-runs';
import { configureLogging, option } from '../options';
import { printable } from '../output';
import { parseWebhookUrl, postRunFinished, SIGNATURE_HEADER, WEBHOOK_SECRET_ENV } from '../webhook';
import { commandSummary } from './index';

/** The port `serve` listens on by default. */
export const DEFAULT_API_PORT = 8470;

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(commandSummary('serve'))
    .requiredOption(
      '--store <store>',
      'the store the API serves: file:///abs/dir, a folder path, or s3://bucket/prefix',
    )
    .option(
      '--host <address>',
      'the address to listen on (another than localhost exposes the API beyond this machine)',
      '127.0.0.1',
    )
    .addOption(
      new Option('--port <port>', 'the port to listen on (0: any free port, printed)')
        .default(DEFAULT_API_PORT)
        .argParser(option(parsePort)),
    )
    .option(
      '--token-file <path>',
      `the API token's file, created (mode 0600) with a new token when missing; ${API_TOKEN_ENV} overrides it (default: <state-dir>/api-token)`,
    )
    .option(
      '--webhook <url>',
      `POST each finished run's event (as EventBridge's detail) to this http(s) URL, retried with backoff, signed in ${SIGNATURE_HEADER}`,
    )
    .option(
      '--webhook-secret-file <path>',
      `the webhook signing secret's file, created (mode 0600) with a new secret when missing; ${WEBHOOK_SECRET_ENV} overrides it (default: <state-dir>/webhook-secret)`,
    )
    .option(
      '--state-dir <dir>',
      'where runs are recorded, one JSON file each (default: $XDG_STATE_HOME/pgferry, else ~/.local/state/pgferry)',
    )
    .action(async (opts: ServeOptions) => serveCommand(opts));
}

interface ServeOptions {
  store: string;
  host: string;
  port: number;
  tokenFile?: string;
  webhook?: string;
  webhookSecretFile?: string;
  stateDir?: string;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535)
    throw new PgferryError('InvalidInput', `not a port: ${JSON.stringify(text)}`);
  return port;
}

async function serveCommand(opts: ServeOptions): Promise<void> {
  configureLogging(false);
  // Loaded here: the application and its OpenAPI machinery take half a second to load, which
  // every other command would pay at start-up.
  const [
    { serve: serveHttp },
    { Hono },
    { createApi },
    { createConsole, consoleGate, SummaryCache },
    { ConsoleSessions },
  ] = await Promise.all([
    import('@hono/node-server'),
    import('hono'),
    import('../../api/app'),
    import('../console/site'),
    import('../console/sessions'),
  ]);
  const webhook = opts.webhook === undefined ? undefined : parseWebhookUrl(opts.webhook);
  const store = openStore(normaliseStoreUrl(opts.store));
  const stateDir = path.resolve(opts.stateDir ?? defaultStateDir(process.env));
  const token = await apiToken(opts.tokenFile ?? path.join(stateDir, 'api-token'), process.env);
  if (opts.webhookSecretFile !== undefined && !webhook) {
    throw new PgferryError(
      'InvalidInput',
      '--webhook-secret-file signs the deliveries of --webhook: give --webhook too',
    );
  }
  const webhookSecret = webhook
    ? await localSecret({
        file: opts.webhookSecretFile ?? path.join(stateDir, 'webhook-secret'),
        env: process.env,
        envName: WEBHOOK_SECRET_ENV,
        what: 'the webhook signing secret',
      })
    : undefined;
  // The server's own passwords, as the CLI reads them (PGPASSWORD, pgferry's variables; else
  // ~/.pgpass): a request never carries one.
  const credentials: Credentials = {
    source: localPassword(undefined, 'source', process.env),
    target: localPassword(undefined, 'target', process.env),
  };
  const log = (line: string) => process.stderr.write(`pgferry serve: ${printable(line)}\n`);
  const deliveries = new Set<Promise<unknown>>();
  // The console's summary of the store: read ahead now, read again when a run has ended.
  const summaries = new SummaryCache(store);
  summaries.get().catch((err: unknown) => log(`cannot read the store's catalog: ${errorMessage(err)}`));
  const host = await LocalRunHost.open({
    store,
    stateDir,
    credentials,
    onFinished: (run) => {
      summaries.invalidate();
      log(`run ${run.id} (${describeRun(run)}) ${run.status}: ${summaryOf(run)}`);
      if (!webhook) return;
      const delivery = postRunFinished(webhook, run, { secret: webhookSecret, onFailure: log }).finally(() =>
        deliveries.delete(delivery),
      );
      deliveries.add(delivery);
    },
  });

  const api = createApi({ runs: host, store, onError: (err) => log(`internal error: ${errorMessage(err)}`) });
  // The web console: a session (signed in by a one-time link or the token) instead of the bearer
  // token, its state-changing requests checked for their CSRF token and origin (../console/).
  const sessions = new ConsoleSessions();
  const consoleSite = createConsole({
    sessions,
    store,
    summaries,
    isApiToken: (text) => authorized(`Bearer ${text}`, token),
  });
  const app = new Hono();
  app.use('*', async (c, next): Promise<Response | undefined> => {
    const begun = Date.now();
    if (!authorized(c.req.header('authorization'), token)) {
      const refused = await consoleGate(c, sessions);
      if (refused) {
        log(`${c.req.method} ${c.req.path} ${refused.status}`);
        return refused;
      }
    }
    await next();
    log(`${c.req.method} ${c.req.path} ${c.res.status} ${Date.now() - begun}ms`);
    return undefined;
  });
  app.route('/', consoleSite);
  app.route('/', api);

  const server = serveHttp({ fetch: app.fetch, hostname: opts.host, port: opts.port });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err) =>
      reject(
        new PgferryError('InvalidInput', `cannot listen on ${opts.host}:${opts.port}: ${errorMessage(err)}`),
      ),
    );
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const shown = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  log(`listening on http://${shown}:${port} (store ${store.url}; runs in ${stateDir})`);
  // As notebook servers do: a link that signs this browser in, once (its code is not the token).
  const linkHost =
    isLoopback(opts.host) || opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : shown;
  log(`the console: http://${linkHost}:${port}/signin?code=${sessions.newCode()} (works once)`);
  if (!isLoopback(opts.host)) {
    log(`${opts.host} is not a loopback address: the API is reachable from other machines, over plain HTTP`);
  }

  // SIGINT, SIGTERM, SIGHUP: stop taking requests, stop the runs (their cleanup runs), then end.
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => resolve(s));
  });
  log(`stopping (${signal}): running runs are interrupted and cleaned up`);
  server.close();
  await host.close(CLI_STOP_SECONDS * 1000);
  await Promise.race([Promise.all(deliveries), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  process.exit(0);
}

function describeRun(run: Run): string {
  return run.database === undefined ? run.kind : `${run.kind} of ${run.database}`;
}

/** `$XDG_STATE_HOME/pgferry`, else `~/.local/state/pgferry`. */
function defaultStateDir(env: NodeJS.ProcessEnv): string {
  return path.join(env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state'), 'pgferry');
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
