import type { z } from 'zod';
import { type CaughtError, parsePayload } from './contracts';
import { PgferryError } from './errors';
import type { BackupStore } from './store';

/**
 * The report a pg-tools task stored, as the execution's output — or the failure to end the
 * execution with: the report's own error when the task wrote one, else the error Step Functions
 * caught (on AWS a failed task's cause is ECS's task description, so the report says more).
 */
export async function reportOrFailure<T extends { status: 'passed' | 'failed'; error?: string }>(
  store: BackupStore,
  key: string,
  schema: z.ZodType<T>,
  what: string,
  caught: CaughtError | undefined,
): Promise<T> {
  const raw = await store.getJson(key);
  if (raw === undefined) {
    if (caught) {
      const failure = new Error(caught.Cause ?? caught.Error);
      failure.name = caught.Error;
      throw failure;
    }
    throw new PgferryError('RestoreFailed', `the ${what} left no report`);
  }
  const report = parsePayload(schema, raw, `${what} report`);
  if (report.status !== 'passed')
    throw new PgferryError('RestoreFailed', report.error ?? `the ${what} failed`);
  return report;
}
