/**
 * A workflow's output is the run in brief (`BackupOutcome`, `RestoreOutcome`, …: ids, status,
 * sizes, counts) and where its full document is; `--json` prints that document, read from the
 * store — with `--aws`, with this machine's AWS credentials, as `list --aws` reads it.
 */
import type { z } from 'zod';
import { parsePayload } from '../core/contracts';
import { PgferryError } from '../core/errors';
import type { DocumentLocation } from '../core/outcomes';
import { openStore } from '../core/store';
import type { WorkflowName } from '../core/workflows';

/** The execution's output as `schema` expects it; anything else is one line saying what to do. */
export function parseOutcome<T>(schema: z.ZodType<T>, output: unknown, workflow: WorkflowName): T {
  const result = schema.safeParse(output);
  if (result.success) return result.data;
  throw new PgferryError(
    'InvalidInput',
    `the ${workflow} workflow's output is not what this pgferry expects (its ${workflow} in brief): ` +
      'with --aws, deploy the stack from this version of pgferry',
  );
}

/** The document at `at` (a manifest or a report), validated by `schema`. */
export async function readDocument<T>(at: DocumentLocation, schema: z.ZodType<T>, what: string): Promise<T> {
  const raw = await openStore(at.store).getJson(at.key);
  if (raw === undefined) {
    throw new PgferryError('BackupNotFound', `the ${what} ${at.key} is not in ${at.store}`);
  }
  return parsePayload(schema, raw, what);
}
