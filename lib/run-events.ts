import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { EVENT_SOURCE } from '../api/events';
import type { RunKind } from '../api/runs';
import { acknowledgeExecutionGrants } from './api';
import type { BackupBucket } from './backup-bucket';
import { lambdaStep } from './lambda-step';
import { acknowledgeWildcards, wildcardResource } from './nag';
import { pgferryStateMachine } from './state-machine';
import type { WorkflowFunctions } from './workflow-functions';

export interface RunEventsProps {
  /** Where the announcing function is built. */
  readonly functions: WorkflowFunctions;
  /** The state machines whose finished executions are announced. */
  readonly stateMachines: Record<RunKind, sfn.IStateMachine>;
  /** The store, where a run's result (the manifest or report its summary names) is read. */
  readonly store: BackupBucket;
  /** The environment of the API's functions (the store and the state machines). */
  readonly environment: Record<string, string>;
}

/** The execution statuses that end a run. */
export const FINISHED_STATUSES = ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/**
 * An EventBridge event on the account's default bus for every finished run (`source: "pgferry"`,
 * detail-type `Backup Succeeded`, `Migration Failed`, …, detail `{id, kind, database, status,
 * summary}`: api/events.ts, the JSON `pgferry serve --webhook` posts), so that a pipeline can wait
 * on it. A rule on Step Functions' own status changes of the four workflows starts a small state
 * machine: `Describe` (a function: the run as the API shows it, made into the event) then
 * `Announce` (Step Functions' PutEvents integration, retried). Nothing is added to the workflows'
 * definitions, so local runs are unchanged.
 */
export class RunEvents extends Construct {
  readonly rule: events.Rule;
  readonly announcer: sfn.StateMachine;
  readonly describe: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: RunEventsProps) {
    super(scope, id);
    this.describe = props.functions.add('RunEventsDescribe', {
      folder: 'api/events',
      name: 'run-events',
      description: 'pgferry: the run-finished event of a finished execution',
      timeout: Duration.seconds(60),
      environment: props.environment,
    });
    for (const machine of Object.values(props.stateMachines)) {
      machine.grantExecution(this.describe, 'states:DescribeExecution', 'states:GetExecutionHistory');
    }
    props.store.grantReadBackups(this.describe);

    const describe = lambdaStep(this, 'Describe', {
      fn: this.describe,
      timeout: Duration.seconds(60),
      resultPath: '$.event',
    });
    const announce = new tasks.EventBridgePutEvents(this, 'Announce', {
      entries: [
        {
          source: EVENT_SOURCE,
          detailType: sfn.JsonPath.stringAt('$.event.detailType'),
          detail: sfn.TaskInput.fromJsonPathAt('$.event.detail'),
        },
      ],
      resultPath: sfn.JsonPath.DISCARD,
    });
    announce.addRetry({
      errors: ['States.ALL'],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 6,
    });
    this.announcer = pgferryStateMachine(
      this,
      'pgferry: announces a finished run on the default event bus',
      describe.next(announce),
    );

    this.rule = new events.Rule(this, 'Finished', {
      description: 'pgferry: a finished backup, restore, verification or migration is announced',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: Object.values(props.stateMachines).map((m) => m.stateMachineArn),
          status: [...FINISHED_STATUSES],
        },
      },
      targets: [
        new eventTargets.SfnStateMachine(this.announcer, {
          input: events.RuleTargetInput.fromObject({
            stateMachineArn: events.EventField.fromPath('$.detail.stateMachineArn'),
            name: events.EventField.fromPath('$.detail.name'),
            status: events.EventField.fromPath('$.detail.status'),
          }),
          retryAttempts: 20,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });
    acknowledgeExecutionGrants(this.describe, props.stateMachines, 'described and their history read');
    acknowledgeWildcards(this.announcer.role, {
      'Resource::*': 'X-Ray and CloudWatch Logs delivery accept no narrower resource',
      [`${wildcardResource(this, this.describe.functionArn)}:*`]:
        "LambdaInvoke's grant of the function's versions and aliases (pgferry's own function only)",
    });
  }
}
