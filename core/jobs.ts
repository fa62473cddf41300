/**
 * Jobs by reference. A run's plan can be large — a restore's or a verification's embeds the
 * backup's manifest, one entry per table — and the ways of handing it on are small: ECS takes
 * 8,192 characters of container overrides, Step Functions 256 KiB per state, a local `spawn` fails
 * with E2BIG past the kernel's limit on one environment string. So preflight stores the plan in
 * the store (`storeJob`, at `jobKey` beside the backup it concerns) and hands on only where it is
 * (`JobRef`): the pg-tools task gets it in two environment variables (`TASK_ENV.jobStore`,
 * `TASK_ENV.jobKey`), the later steps in the workflow's state, and each reads the plan with
 * `loadJob`. The same on AWS and locally.
 */
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { JobDocumentSchema, type JobRef, JobRefSchema, parsePayload, SCHEMA_VERSION } from './contracts';
import { PgferryError } from './errors';
import type { BackupStore } from './store';
import type { JobKind } from './store-keys';
import { TASK_ENV } from './workflows';

/** Stores `plan` as a job of `kind` at `key` and returns the reference to hand on. */
export async function storeJob(
  store: BackupStore,
  key: string,
  kind: JobKind,
  plan: unknown,
): Promise<JobRef> {
  await store.putJson(key, { schemaVersion: SCHEMA_VERSION, kind, plan });
  return { store: store.url, key };
}

/**
 * Reads the job `ref` points to and returns its plan, validated by `schema`. Every way it can be
 * wrong is one line naming the job: it is missing, not JSON, of another kind, or not a plan.
 * Store outages surface as the store's own errors (retryable where they are).
 */
export async function loadJob<T>(
  openStore: (url: string) => BackupStore,
  ref: JobRef,
  kind: JobKind,
  schema: z.ZodType<T>,
): Promise<T> {
  const where = `${ref.key} in ${ref.store}`;
  const store = openStore(ref.store);
  let text: string;
  try {
    // Read as text rather than with getJson: what is wrong with a job must not look like a store outage.
    text = await readText(await store.download(ref.key));
  } catch (err) {
    if (err instanceof PgferryError && err.code === 'BackupNotFound') {
      throw new PgferryError(
        'InvalidInput',
        `no ${kind} job at ${where}: the workflow's preflight stores it; start the ${kind} again`,
      );
    }
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new PgferryError('InvalidInput', `the ${kind} job ${where} is not valid JSON`);
  }
  const document = parsePayload(JobDocumentSchema, raw, `job ${where}`);
  if (document.kind !== kind) {
    throw new PgferryError('InvalidInput', `${where} is a ${document.kind} job, not a ${kind} job`);
  }
  return parsePayload(schema, document.plan, `${kind} job ${where}`);
}

/** The job reference the pg-tools task was started with (`TASK_ENV.jobStore`, `TASK_ENV.jobKey`). */
export function jobRefFromEnv(env: NodeJS.ProcessEnv): JobRef {
  for (const variable of [TASK_ENV.jobStore, TASK_ENV.jobKey]) {
    if (!env[variable]) {
      throw new PgferryError(
        'InvalidInput',
        `${variable} is not set: the task runs the job a workflow's preflight stored, named by ${TASK_ENV.jobStore} and ${TASK_ENV.jobKey}`,
      );
    }
  }
  return parsePayload(
    JobRefSchema,
    { store: env[TASK_ENV.jobStore], key: env[TASK_ENV.jobKey] },
    `job reference (${TASK_ENV.jobStore}, ${TASK_ENV.jobKey})`,
  );
}

async function readText(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}
