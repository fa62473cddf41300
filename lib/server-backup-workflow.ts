import { Duration } from 'aws-cdk-lib';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { RETRYABLE_ERRORS } from '../core/errors';
import { SERVER_BACKUP_STATES } from '../core/workflows';
import { lambdaStep } from './lambda-step';
import { acknowledgeNestedExecutions } from './nag';
import { pgferryStateMachine, type Workflow, type WorkflowProps } from './state-machine';

export interface ServerBackupWorkflowProps extends WorkflowProps {
  /** The backup workflow: each database of the server is one nested execution of it. */
  readonly backup: sfn.IStateMachine;
}

/**
 * The server-backup workflow (issue 16): ListDatabases (the server's databases now, compared with
 * its previous set) → BackupDatabases, an inline Map over them with the request's `parallel` as
 * its maximum concurrency, each iteration a nested execution of the backup workflow
 * (`startExecution.sync:2`; a failed one is caught and recorded, the others go on) → RecordSet
 * (the set's manifest, last) → a failed set fails the execution. The same definition runs locally.
 *
 * Why an inline Map and not a Distributed Map: each iteration is already an execution of its own
 * (its history, its retries, its cleanup), so the Map only starts and waits; a server holds tens
 * to a few hundred databases (`MAX_SET_DATABASES`, 400: about 10 history events each, well inside
 * the 25,000 of one execution, and requests and results under 256 KiB); concurrency per server is
 * bounded by the Fargate quota long before inline Map's 40. A Distributed Map would add a child
 * execution per item (billed state transitions), S3 item readers and result writers, and IAM for
 * them, to lift limits that a server's databases do not reach. docs/design.md, "Server backups".
 */
export class ServerBackupWorkflow extends Construct implements Workflow {
  readonly stateMachine: sfn.StateMachine;
  /** Lists the server's databases (`lambdas/server-backup/list`): connects to the server entries only. */
  readonly list: nodejs.NodejsFunction;
  /** Writes the set's manifest and the server's metrics (`lambdas/server-backup/record`). */
  readonly record: nodejs.NodejsFunction;
  readonly handlers: readonly nodejs.NodejsFunction[];

  constructor(
    scope: Construct,
    id: string,
    private readonly props: ServerBackupWorkflowProps,
  ) {
    super(scope, id);
    const { functions, store } = props;
    this.list = functions.add('ServerList', {
      folder: 'server-backup/list',
      name: 'server-list',
      description: "pgferry: lists a server's databases for its backup set",
      timeout: Duration.minutes(2),
      connectsToDatabases: true,
      // Only the server entries' logins (granted by the stack), not every database's.
      ownLogins: true,
    });
    this.record = functions.add('ServerRecord', {
      folder: 'server-backup/record',
      name: 'server-record',
      description: "pgferry: writes a server backup set's manifest",
      timeout: Duration.minutes(5),
    });
    this.handlers = [this.list, this.record];
    // List reads the previous sets; record reads the members' manifests and writes the set's.
    store.grantReadBackups(this.list);
    store.grantReadBackups(this.record);
    store.grantWriteBackups(this.record);

    const definition = this.buildList()
      .next(this.buildMap())
      .next(this.buildRecord())
      .next(this.buildCheck());
    this.stateMachine = pgferryStateMachine(
      this,
      "pgferry server backup: every database of a server, found at run time, through the backup workflow, then the set's manifest",
      definition,
    );
    acknowledgeNestedExecutions(this.stateMachine, props.backup);
  }

  /** The execution input is the server backup request; the output, the set being made and its items. */
  private buildList(): tasks.LambdaInvoke {
    return lambdaStep(this, SERVER_BACKUP_STATES.list, { fn: this.list, timeout: Duration.minutes(2) });
  }

  /**
   * One nested backup execution per database, `$.parallel` at once. A failed one becomes
   * `{database, error}`; the results replace the items (`$.members`), so the state stays small.
   */
  private buildMap(): sfn.Map {
    const member = new tasks.StepFunctionsStartExecution(this, SERVER_BACKUP_STATES.member, {
      stateMachine: this.props.backup,
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      input: sfn.TaskInput.fromJsonPathAt('$'),
      associateWithParent: false,
      // With `startExecution.sync:2` the nested execution's output (a `BackupOutcome`) is JSON.
      resultSelector: { 'outcome.$': '$.Output' },
      taskTimeout: sfn.Timeout.duration(Duration.hours(13)),
    });
    // Starting many executions at 02:00 may be throttled: retried, not recorded as a failure.
    member.addRetry({
      errors: ['StepFunctions.ExecutionLimitExceededException', 'StepFunctions.SdkClientException'],
      interval: Duration.seconds(10),
      backoffRate: 2,
      maxAttempts: 6,
    });
    member.addCatch(
      new sfn.Pass(this, SERVER_BACKUP_STATES.memberFailed, {
        parameters: { 'database.$': '$.source.database', 'error.$': '$.error' },
      }),
      { resultPath: '$.error' },
    );
    const map = new sfn.Map(this, SERVER_BACKUP_STATES.map, {
      itemsPath: '$.members',
      maxConcurrencyPath: '$.parallel',
      resultPath: '$.members',
    });
    map.itemProcessor(member);
    return map;
  }

  /** The set's manifest, written last; its output is the execution's (`ServerBackupOutcome`). */
  private buildRecord(): tasks.LambdaInvoke {
    return lambdaStep(this, SERVER_BACKUP_STATES.record, {
      fn: this.record,
      payload: sfn.TaskInput.fromObject({ 'set.$': '$.set', 'members.$': '$.members' }),
      timeout: Duration.minutes(5),
      retries: [
        { errors: [...RETRYABLE_ERRORS], interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 4 },
      ],
    });
  }

  /** A set with a failed member fails the execution (its complete members stay usable). */
  private buildCheck(): sfn.Choice {
    return new sfn.Choice(this, SERVER_BACKUP_STATES.complete)
      .when(
        sfn.Condition.stringEquals('$.status', 'failed'),
        new sfn.Fail(this, SERVER_BACKUP_STATES.failed, {
          error: 'BackupSetFailed',
          causePath: sfn.JsonPath.stringAt('$.cause'),
        }),
      )
      .otherwise(new sfn.Succeed(this, 'SetRecorded'));
  }
}
