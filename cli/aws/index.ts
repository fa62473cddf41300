/**
 * `--aws`: the commands run on a deployed stack instead of on this machine. The request is the
 * one the local path validates; only its connection differs (see `./options`). Loaded only by
 * commands given `--aws`.
 */
import { PgferryError } from '../../core/errors';
import type { WorkflowName } from '../../core/workflows';
import type { AwsAccess } from './clients';
import { runExecution } from './execution';
import type { AwsOptions } from './options';
import { readStack, stackNameFrom } from './stack';

/**
 * Runs one workflow on the stack: starts an execution of its state machine with `request`,
 * prints each state entered and left on stderr, and resolves with the execution's output.
 * A failed, timed-out or aborted execution rejects with `<error>: <cause>`.
 */
export async function runOnAws(
  workflow: WorkflowName,
  request: { store: string },
  opts: AwsOptions,
  access: AwsAccess,
): Promise<unknown> {
  if (!request.store.startsWith('s3://')) {
    throw new PgferryError(
      'InvalidInput',
      `--store must be the stack's S3 store with --aws (its StoreUrl output), not ${request.store}`,
    );
  }
  const clients = await access.clients();
  const stack = await readStack(clients, stackNameFrom(opts.stack));
  if (!stack.stateMachineArns[workflow]) {
    throw new PgferryError(
      'InvalidInput',
      `stack ${stack.stackName} has no ${workflow} state machine: deploy this version of pgferry`,
    );
  }
  return runExecution(clients, stack.stateMachineArns[workflow], request, {
    pollIntervalMs: access.pollIntervalMs,
    workflow,
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
}

/** The stack's store (`StoreUrl`), for the commands that read the store directly (`list`). */
export async function storeUrlOnAws(opts: AwsOptions, access: AwsAccess): Promise<string> {
  const stack = await readStack(await access.clients(), stackNameFrom(opts.stack));
  return stack.storeUrl;
}
