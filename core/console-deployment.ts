/**
 * What the AWS console's two functions know of the deployment (lib/runbooks.ts,
 * lib/backups-widget.ts): the configured databases (their ids, their freshness alarm's threshold,
 * the request a backup of each is started with) and the configured targets (their connections and
 * cutover services), and what the runbooks offer (a `clean` restore and a cutover only where someone
 * may approve them).
 *
 * Compiled into the functions' bundles like the bindings (core/deployment.ts): esbuild replaces
 * `process.env.PGFERRY_CONSOLE` with it, so neither a runbook's caller nor a dashboard's editor
 * can change it, and a fleet of 1,000 databases does not meet Lambda's 4 KiB environment. Its
 * deploy-time tokens (the store's bucket, the region) are not in it: they are in the environment.
 */
import { z } from 'zod';
import { CutoverEcsServiceSchema } from './bindings';
import { ConnectionSchema } from './contracts';
import { parsePayload } from './contracts/parse';
import { PgferryError } from './errors';

export const CONSOLE_DEPLOYMENT_VERSION = 1;

/** The runbooks, by kind: `<stack>-Backup`, … (the SSM documents' names). */
export const RUNBOOK_KINDS = ['backup', 'verify', 'restore', 'migrate'] as const;
export type RunbookKind = (typeof RUNBOOK_KINDS)[number];

export const ConsoleDeploymentSchema = z
  .object({
    version: z.literal(CONSOLE_DEPLOYMENT_VERSION),
    databases: z.array(
      z
        .object({
          id: z.string(),
          /** Its freshness alarm's threshold (`alarmAfterHours`). */
          alarmAfterHours: z.number().positive(),
          /**
           * Its schedules' backup request less the store (a token at synth time): checked as a
           * `BackupRequest` once the store is added.
           */
          backup: z.record(z.string(), z.unknown()),
          /** It may be restored into (`restoreTarget`). */
          restoreTarget: z.boolean(),
        })
        .strict(),
    ),
    targets: z.array(
      z
        .object({
          id: z.string(),
          connection: ConnectionSchema,
          cutoverEcsServices: z.array(CutoverEcsServiceSchema),
        })
        .strict(),
    ),
    /** What the runbooks offer: a restore in `clean` mode, a migration with cutover. */
    offers: z.object({ cleanRestore: z.boolean(), cutover: z.boolean() }).strict(),
  })
  .strict();
export type ConsoleDeployment = z.infer<typeof ConsoleDeploymentSchema>;

/** The variable the deployment is compiled into (and, outside a bundle, read from: the tests). */
export const CONSOLE_ENV = 'PGFERRY_CONSOLE';

/** The console's functions' environment (lib sets it): the store and the runbooks' names. */
export const CONSOLE_FUNCTION_ENV = {
  /** The deployment's store, `s3://<bucket>/backups`. */
  store: 'PGFERRY_STORE',
  /** `{"backup": "<stack>-Backup", …}`: the SSM documents the widget links to. */
  runbooks: 'PGFERRY_RUNBOOKS',
} as const;

/** The deployment the console's functions were built for. */
export function currentConsoleDeployment(): ConsoleDeployment {
  // A constant in the bundle (see the module's comment): not an environment lookup there.
  const text = process.env.PGFERRY_CONSOLE;
  if (!text) {
    throw new PgferryError(
      'InvalidInput',
      `${CONSOLE_ENV} is not set: the console's functions are built by lib/runbooks.ts and lib/backups-widget.ts`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PgferryError('InvalidInput', `${CONSOLE_ENV} is not JSON`);
  }
  return parsePayload(ConsoleDeploymentSchema, json, CONSOLE_ENV);
}
