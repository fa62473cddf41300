import type { Construct } from 'constructs';
import { VERIFY_STATES } from '../core/workflows';
import { PgToolsWorkflow } from './pg-tools-workflow';
import type { WorkflowProps } from './state-machine';

/**
 * The verify workflow: VerifyPreflight → Verify (the task restores the backup into a throwaway
 * server of its own and checks it) → VerifyRecord.
 */
export class VerifyWorkflow extends PgToolsWorkflow {
  constructor(scope: Construct, id: string, props: WorkflowProps) {
    super(scope, id, props, {
      comment: 'pgferry verify: restores a backup into a throwaway server in the task and checks it',
      states: {
        preflight: VERIFY_STATES.preflight,
        task: VERIFY_STATES.verify,
        record: VERIFY_STATES.record,
      },
      workflow: 'verify',
      preflightDescription: 'pgferry: resolves the backup to verify',
      recordDescription: "pgferry: reads a verification's report",
    });
  }
}
