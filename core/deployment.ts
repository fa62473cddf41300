/**
 * Where this process runs: on AWS, as part of a deployment whose configuration says which login
 * belongs to which server (its bindings, core/bindings.ts), or locally, where the CLI holds the
 * passwords and no configuration exists. This is the one switch: whatever behaves differently on
 * AWS — the refusals of core/login-policy.ts, the disk a task may have, whether a lease names a
 * process, whether metrics are published — asks `currentDeployment()`, never the environment.
 *
 * How the bindings arrive, so that whoever may start an execution cannot change them:
 *
 * - Lambda functions: compiled in. lib/workflow-functions.ts bundles every handler with esbuild
 *   `define: {'process.env.PGFERRY_BINDINGS': …}`, which replaces the expression below with the
 *   deployment's bindings as a string constant. Changing them means deploying new code; no
 *   environment variable is read (a Lambda environment holds only 4 KiB, and 100 databases' bindings
 *   are several times that).
 * - The pg-tools tasks: the task definition's environment (lib/pg-tools-task.ts), written by the
 *   deployment. The workflows' container overrides name only the action and the job, so no
 *   execution can set or change it. Encoded (gzip, base64: `encodeBindings`) because a task
 *   definition holds at most 64 KiB, which 150 logins in plain JSON would nearly fill.
 * - Locally: nothing, unless PGFERRY_BINDINGS is set in the environment — then a local run
 *   refuses what the deployment would (the tests run the runner that way).
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { bindingOfName, bindingRetention, type DatabaseBindings, DatabaseBindingsSchema } from './bindings';
import type { TaskPlacement } from './contracts';
import { parsePayload } from './contracts';
import { errorMessage, PgferryError } from './errors';
import type { RetentionPolicy } from './retention';

/** The variable (and, in the functions, the compiled-in constant) that carries the bindings. */
export const BINDINGS_ENV = 'PGFERRY_BINDINGS';

/** Fargate's largest ephemeral storage (GiB): what a task on AWS can hold at most. */
export const FARGATE_MAX_DISK_GIB = 200;

export type Deployment =
  /** On AWS: every connection is checked against the configured bindings. */
  | { readonly onAws: true; readonly bindings: DatabaseBindings }
  /** Locally: the CLI holds the passwords; nothing is checked against a configuration. */
  | { readonly onAws: false };

const LOCAL: Deployment = { onAws: false };

/** The bindings as the functions and the task receive them: gzip'd JSON, base64. */
export function encodeBindings(bindings: DatabaseBindings): string {
  return gzipSync(JSON.stringify(bindings), { level: 9 }).toString('base64');
}

/** The deployment that `encoded` describes: local when there is none; invalid bindings fail. */
export function deploymentOf(encoded: string | undefined): Deployment {
  if (encoded === undefined || encoded === '') return LOCAL;
  let json: unknown;
  try {
    json = JSON.parse(gunzipSync(Buffer.from(encoded, 'base64')).toString('utf8'));
  } catch (err) {
    throw new PgferryError(
      'InvalidInput',
      `${BINDINGS_ENV} is not the deployment's bindings (base64 of gzip'd JSON): ${errorMessage(err)}`,
    );
  }
  return { onAws: true, bindings: parsePayload(DatabaseBindingsSchema, json, BINDINGS_ENV) };
}

let cached: { encoded: string | undefined; deployment: Deployment } | undefined;

/**
 * Where this process runs. In a Lambda bundle `process.env.PGFERRY_BINDINGS` below is not a
 * variable at all but the constant esbuild put there (see the module's comment).
 */
export function currentDeployment(): Deployment {
  const encoded = process.env.PGFERRY_BINDINGS;
  if (!cached || cached.encoded !== encoded) cached = { encoded, deployment: deploymentOf(encoded) };
  return cached.deployment;
}

/**
 * The retention policy of the backups filed under `database` (a configured id): the one its
 * configuration entry sets (its binding's `retention`, compiled into the functions like every
 * binding, so no execution input can change it), else `fallback` — the deployment's policy in
 * PGFERRY_RETENTION, or the CLI's.
 */
export function retentionFor(
  database: string,
  fallback: RetentionPolicy,
  deployment: Deployment = currentDeployment(),
): RetentionPolicy {
  if (!deployment.onAws) return fallback;
  // A server entry's member (`<server>.<database>`): its own policy, else the server's.
  return bindingRetention(bindingOfName(deployment.bindings, database)) ?? fallback;
}

/**
 * The variable of the backup preflight function on AWS: pgferry's task subnets by availability
 * zone, as JSON (`{"eu-west-1a": ["subnet-…"], …}`), written by the stack.
 */
export const TASK_SUBNETS_ENV = 'PGFERRY_TASK_SUBNETS';

/**
 * Where the dump of `database` (a configured id) runs: in its availability zone's subnets when
 * its configuration names the zone, so that what pg_dump reads does not cross zones (billed both
 * ways); else in every subnet. Locally: nowhere (no task is placed). On AWS without the stack's
 * subnets in TASK_SUBNETS_ENV: an error naming the variable.
 */
export function taskPlacement(
  database: string,
  env: NodeJS.ProcessEnv,
  deployment: Deployment = currentDeployment(),
): TaskPlacement {
  if (!deployment.onAws) return { subnets: [] };
  let byZone: Record<string, string[]>;
  try {
    byZone = JSON.parse(env[TASK_SUBNETS_ENV] ?? '') as Record<string, string[]>;
  } catch {
    throw new PgferryError(
      'InvalidInput',
      `${TASK_SUBNETS_ENV} is not the stack's task subnets by zone (JSON)`,
    );
  }
  const zone = bindingOfName(deployment.bindings, database)?.binding.availabilityZone;
  const inZone = zone ? byZone[zone] : undefined;
  return { subnets: inZone?.length ? inZone : Object.values(byZone).flat() };
}
