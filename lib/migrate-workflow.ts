import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { CutoverEcsService } from '../core/bindings';
import { MIGRATE_STATES } from '../core/workflows';
import { lambdaStep } from './lambda-step';
import { acknowledgeWildcards, wildcardResource } from './nag';
import {
  DEFAULT_TASK_TIMEOUT,
  pgferryStateMachine,
  type Workflow,
  type WorkflowProps,
} from './state-machine';

export interface MigrateWorkflowProps extends WorkflowProps {
  /**
   * The ECS services a cutover may scale (`ecs:UpdateService`): the configured targets'.
   * @default none (a cutover that names services fails at its first ScaleDown)
   */
  readonly cutoverServices?: readonly CutoverEcsService[];
}

/** The tag (value `true`) a secret needs before a migration's cutover may read and rewrite it. */
export const CUTOVER_SECRET_TAG = 'pgferry-cutover';

/**
 * IAM needs a resource for the ScaleDown/ScaleUp states' grant even when no target configures a
 * cutover service: this names a service nobody deploys.
 */
const NO_CUTOVER_SERVICE: CutoverEcsService = { cluster: 'pgferry-no-cutover-services', service: 'none' };

type Step = 'freeze' | 'record' | 'updateSecret' | 'finish' | 'cleanup' | 'cutoverCommand';

/**
 * The migrate state machine:
 *
 *   MigratePreflight → [SchemaTest] → [ScaleDown services] → [Freeze] → Migrate → MigrateRecord
 *     → [UpdateTargetSecret] → [RunCutoverCommand] → [ScaleUp services] → MigrateFinish
 *
 * Bracketed states run when the execution input asks for them (Choice states on the `steps`
 * preflight puts in the state). Every failure after preflight goes to MigrateCleanup — which ends
 * the run's sessions left on either server, drops the databases a killed runner created and
 * marked, unfreezes the source and removes the incomplete backups — then scales the services back
 * up and fails the execution.
 */
export class MigrateWorkflow extends Construct implements Workflow {
  readonly stateMachine: sfn.StateMachine;
  /** Checks both servers and plans (`lambdas/migrate/preflight`). */
  readonly preflight: nodejs.NodejsFunction;
  /** Freeze, record, the cutover secret, finish and cleanup (`lambdas/migrate/steps`). */
  readonly steps: nodejs.NodejsFunction;
  readonly handlers: readonly nodejs.NodejsFunction[];
  /**
   * The secrets the cutover may read and write (named by the execution input, so all of the
   * account's): granted to the steps function, which updates the secret so that its value never
   * passes through the execution's state.
   */
  readonly cutoverSecrets: string;
  /** The ARNs of the ECS services the cutover may scale: the configured ones. */
  readonly cutoverServiceArns: string[];

  constructor(
    scope: Construct,
    id: string,
    private readonly props: MigrateWorkflowProps,
  ) {
    super(scope, id);
    const stack = Stack.of(this);
    this.cutoverSecrets = stack.formatArn({
      service: 'secretsmanager',
      resource: 'secret',
      resourceName: '*',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const services = props.cutoverServices?.length ? props.cutoverServices : [NO_CUTOVER_SERVICE];
    this.cutoverServiceArns = services.map(({ cluster, service }) =>
      stack.formatArn({ service: 'ecs', resource: 'service', resourceName: `${cluster}/${service}` }),
    );
    this.preflight = props.functions.add('MigratePreflight', {
      folder: 'migrate/preflight',
      name: 'migrate-preflight',
      description: 'pgferry: checks the source and target of a migration and plans it',
      timeout: Duration.minutes(5),
      connectsToDatabases: true,
    });
    this.steps = props.functions.add('MigrateSteps', {
      folder: 'migrate/steps',
      name: 'migrate-steps',
      description: "pgferry: a migration's freeze, record, finish and cleanup",
      timeout: Duration.minutes(15),
      connectsToDatabases: true,
      // Its record step tags the archived backups' tiers like the backup's record step.
      environment: props.functions.retentionEnvironment,
    });
    this.handlers = [this.preflight, this.steps];
    this.grantStore();

    const failed = this.buildFailurePath();
    const catching = <T extends sfn.TaskStateBase | sfn.Map>(state: T): T => {
      state.addCatch(failed, { resultPath: '$.error' });
      return state;
    };

    const definition = sfn.Chain.start(this.buildPreflight())
      .next(
        this.optional(
          'SchemaTestRequested',
          this.booleanTrue('$.steps.schemaTest'),
          catching(this.buildSchemaTest()),
        ),
      )
      .next(
        this.optional(
          'ScaleDownRequested',
          sfn.Condition.isPresent('$.steps.ecsServices'),
          catching(this.buildScaleServices('ScaleDownServices', MIGRATE_STATES.scaleDown, 0)),
        ),
      )
      .next(
        this.optional(
          'FreezeRequested',
          this.booleanTrue('$.steps.freezeSource'),
          catching(this.buildStep(MIGRATE_STATES.freeze, 'freeze', '$.freeze')),
        ),
      )
      .next(catching(this.buildMigrate()))
      .next(catching(this.buildStep(MIGRATE_STATES.record, 'record', '$.record')))
      .next(
        this.optional(
          'SecretUpdateRequested',
          this.booleanTrue('$.steps.updateSecret'),
          catching(this.buildStep(MIGRATE_STATES.updateSecret, 'updateSecret', '$.cutoverSecret')),
        ),
      )
      .next(
        this.optional(
          'CutoverCommandRequested',
          this.booleanTrue('$.steps.cutoverCommand'),
          catching(this.buildStep(MIGRATE_STATES.cutoverCommand, 'cutoverCommand', sfn.JsonPath.DISCARD)),
        ),
      )
      .next(
        this.optional(
          'ScaleUpRequested',
          sfn.Condition.isPresent('$.steps.ecsServices'),
          catching(this.buildScaleServices('ScaleUpServices', MIGRATE_STATES.scaleUp)),
        ),
      )
      .next(catching(this.buildStep(MIGRATE_STATES.finish, 'finish')));

    this.stateMachine = pgferryStateMachine(
      this,
      'pgferry migrate: one database (or all) to another server or major, archived, verified and reported',
      definition,
    );
    this.grantCutoverSecrets();
  }

  /**
   * Both functions read, write and delete in the store (the steps function writes manifests and
   * removes a failed migration's incomplete backups); the steps function tags their retention
   * tiers.
   */
  private grantStore(): void {
    const { store } = this.props;
    for (const fn of this.handlers) {
      store.grantReadBackups(fn);
      store.grantWriteBackups(fn);
      store.grantDeleteBackups(fn);
    }
    store.grantTagBackups(this.steps);
  }

  /** The steps function reads and rewrites the cutover secrets: only those tagged for it. */
  private grantCutoverSecrets(): void {
    iam.Grant.addToPrincipal({
      grantee: this.steps,
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
      resourceArns: [this.cutoverSecrets],
      conditions: { StringEquals: { [`secretsmanager:ResourceTag/${CUTOVER_SECRET_TAG}`]: 'true' } },
    });
    acknowledgeWildcards(this.steps, {
      [wildcardResource(this, this.cutoverSecrets)]:
        `the cutover secret is named by the execution input (cutover.secretArn); only Get/PutSecretValue, only on secrets tagged ${CUTOVER_SECRET_TAG}=true`,
    });
  }

  private booleanTrue(path: string): sfn.Condition {
    return sfn.Condition.and(sfn.Condition.isPresent(path), sfn.Condition.booleanEquals(path, true));
  }

  /** A Choice that runs `state` when `condition` holds, and continues after it either way. */
  private optional(id: string, condition: sfn.Condition, state: sfn.IChainable): sfn.Chain {
    return new sfn.Choice(this, id).when(condition, state).afterwards({ includeOtherwise: true });
  }

  private buildPreflight(): tasks.LambdaInvoke {
    return lambdaStep(this, MIGRATE_STATES.preflight, { fn: this.preflight, timeout: Duration.minutes(5) });
  }

  /** A step of `lambdas/migrate/steps`, given the whole state; its result goes to `resultPath`. */
  private buildStep(id: string, step: Step, resultPath?: string): tasks.LambdaInvoke {
    return lambdaStep(this, id, {
      fn: this.steps,
      payload: sfn.TaskInput.fromObject({ step, state: sfn.JsonPath.objectAt('$') }),
      resultPath,
      timeout: Duration.minutes(step === 'cutoverCommand' ? 15 : 5),
    });
  }

  private buildSchemaTest(): tasks.EcsRunTask {
    return this.props.pgTools.runTaskState(
      this,
      MIGRATE_STATES.schemaTest,
      'migrate-schema-test',
      Duration.hours(2),
    );
  }

  private buildMigrate(): tasks.EcsRunTask {
    return this.props.pgTools.runTaskState(
      this,
      MIGRATE_STATES.migrate,
      'migrate',
      this.props.taskTimeout ?? DEFAULT_TASK_TIMEOUT,
    );
  }

  private buildScaleServices(id: string, taskId: string, desiredCount?: number): sfn.Map {
    return scaleServices(this, {
      mapId: id,
      taskId,
      itemsPath: '$.steps.ecsServices',
      serviceArns: this.cutoverServiceArns,
      desiredCount,
    });
  }

  /**
   * MigrateCleanup (end the run's sessions, drop the databases it marked, unfreeze, remove incomplete backups, name the error) → the services scaled
   * back up → MigrateFailed.
   */
  private buildFailurePath(): sfn.IChainable {
    const cleanup = this.buildStep(MIGRATE_STATES.failed, 'cleanup', '$.cleanup');
    const fail = new sfn.Fail(this, MIGRATE_STATES.failState, {
      errorPath: sfn.JsonPath.stringAt('$.cleanup.error'),
      causePath: sfn.JsonPath.stringAt('$.cleanup.cause'),
    });
    const restart = this.buildScaleServices('RestartServicesAfterFailure', 'RestartService');
    restart.addCatch(fail, { resultPath: sfn.JsonPath.DISCARD });
    return cleanup.next(
      new sfn.Choice(this, 'RestartServicesRequested')
        .when(sfn.Condition.isPresent('$.steps.ecsServices'), restart.next(fail))
        .otherwise(fail),
    );
  }
}

/**
 * `ecs:UpdateService` on every service at `itemsPath` (`{cluster, service, desiredCount}`): to
 * `desiredCount` if given, else to each item's own. The role may update `serviceArns` only; another
 * service fails the state. The migrate workflow's cutover and failure path, and the run-events
 * announcer's clean-up of a cancelled migration, scale services with it.
 */
export function scaleServices(
  scope: Construct,
  opts: {
    mapId: string;
    taskId: string;
    itemsPath: string;
    serviceArns: readonly string[];
    desiredCount?: number;
  },
): sfn.Map {
  const update = new tasks.CallAwsService(scope, opts.taskId, {
    service: 'ecs',
    action: 'updateService',
    parameters: {
      Cluster: sfn.JsonPath.stringAt('$.cluster'),
      Service: sfn.JsonPath.stringAt('$.service'),
      DesiredCount: opts.desiredCount ?? sfn.JsonPath.numberAt('$.desiredCount'),
    },
    iamResources: [...opts.serviceArns],
    iamAction: 'ecs:UpdateService',
    resultPath: sfn.JsonPath.DISCARD,
    taskTimeout: sfn.Timeout.duration(Duration.minutes(1)),
  });
  update.addRetry({
    errors: ['Ecs.EcsException', 'Ecs.ServerException'],
    interval: Duration.seconds(5),
    maxAttempts: 3,
  });
  const map = new sfn.Map(scope, opts.mapId, {
    itemsPath: opts.itemsPath,
    resultPath: sfn.JsonPath.DISCARD,
    maxConcurrency: 5,
  });
  map.itemProcessor(update);
  return map;
}
