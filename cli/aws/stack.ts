/** The deployed stack, found by name: its store and state machines, from its outputs. */
import { DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { PgferryError } from '../../core/errors';
import type { WorkflowName } from '../../core/workflows';
import type { AwsClients } from './clients';

/** The stack `cdk deploy` creates unless the configuration names another (`stackName`). */
export const DEFAULT_STACK_NAME = 'Pgferry';

/** `--stack`, else `PGFERRY_STACK`, else `Pgferry`. */
export function stackNameFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return option ?? (env.PGFERRY_STACK || DEFAULT_STACK_NAME);
}

export interface PgferryStackOutputs {
  stackName: string;
  /** `s3://bucket/backups`: the store of every execution input. */
  storeUrl: string;
  stateMachineArns: Record<WorkflowName, string>;
}

/** The outputs `lib/pgferry-stack.ts` declares (`StoreUrl`, `<Workflow>StateMachineArn`). */
export const STACK_OUTPUTS = {
  storeUrl: 'StoreUrl',
  stateMachineArns: {
    backup: 'BackupStateMachineArn',
    restore: 'RestoreStateMachineArn',
    verify: 'VerifyStateMachineArn',
    migrate: 'MigrateStateMachineArn',
  },
} as const;

/** Reads the stack's outputs; a missing stack or output is one line that says what to do. */
export async function readStack(clients: AwsClients, stackName: string): Promise<PgferryStackOutputs> {
  let outputs: Map<string, string>;
  let status: string | undefined;
  try {
    const { Stacks } = await clients.cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = Stacks?.[0];
    if (!stack) throw stackNotFound(stackName);
    status = stack.StackStatus;
    outputs = new Map((stack.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));
  } catch (err) {
    // CloudFormation answers a missing stack with a ValidationError "Stack with id X does not exist".
    if (err instanceof Error && err.name === 'ValidationError' && /does not exist/.test(err.message)) {
      throw stackNotFound(stackName);
    }
    throw err;
  }
  const output = (key: string): string => {
    const value = outputs.get(key);
    if (!value) {
      throw new PgferryError(
        'InvalidInput',
        `stack ${stackName} (${status ?? 'unknown status'}) has no output ${key}: is it a deployed pgferry stack?`,
      );
    }
    return value;
  };
  const arns = STACK_OUTPUTS.stateMachineArns;
  return {
    stackName,
    storeUrl: output(STACK_OUTPUTS.storeUrl),
    stateMachineArns: {
      backup: output(arns.backup),
      restore: output(arns.restore),
      verify: output(arns.verify),
      // Optional: stacks deployed before migrate existed lack it (runOnAws says so when it is needed).
      migrate: outputs.get(arns.migrate) ?? '',
    },
  };
}

function stackNotFound(stackName: string): PgferryError {
  return new PgferryError(
    'InvalidInput',
    `no stack ${stackName} in this account and region: deploy it (npx cdk deploy), or name yours with --stack <name> or PGFERRY_STACK (the region comes from AWS_REGION or the AWS profile)`,
  );
}
