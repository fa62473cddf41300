import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { RESTORE_STATES } from '../core/workflows';
import { acknowledgeNestedExecutions } from './nag';
import { PgToolsWorkflow } from './pg-tools-workflow';
import type { WorkflowProps } from './state-machine';

export interface RestoreWorkflowProps extends WorkflowProps {
  /** The backup workflow's state machine: a clean restore backs its target up with it first. */
  readonly backup: sfn.IStateMachine;
}

/**
 * The restore workflow: RestorePreflight → [SafetyBackup: a nested backup execution of the
 * target, when preflight asks for one] → Restore → RestoreRecord, and after a failed Restore,
 * RestoreCleanup → RestoreRecord. With a safety backup, Record writes the safety backup's id into
 * the stored report, so it may write to the store too. The cleanup, not Record, connects to the
 * target: Record stays without database access.
 */
export class RestoreWorkflow extends PgToolsWorkflow {
  /** RestoreCleanup, which the announcer also runs after a stopped restore (lib/run-events.ts). */
  declare readonly cleanup: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: RestoreWorkflowProps) {
    super(scope, id, props, {
      comment: 'pgferry restore: a verified backup into a target database, checked and reported',
      states: {
        preflight: RESTORE_STATES.preflight,
        task: RESTORE_STATES.restore,
        record: RESTORE_STATES.record,
        cleanup: RESTORE_STATES.cleanup,
      },
      workflow: 'restore',
      preflightDescription: 'pgferry: resolves a backup and checks the restore target',
      preflightConnectsToDatabases: true,
      recordDescription: "pgferry: reads a restore's report",
      cleanup: {
        description: 'pgferry: after a failed restore, ends its sessions and drops the database it created',
      },
      safetyBackup: { stateName: RESTORE_STATES.safetyBackup, stateMachine: props.backup },
    });
    props.store.grantWriteBackups(this.record);
    acknowledgeNestedExecutions(this.stateMachine, props.backup);
  }
}
