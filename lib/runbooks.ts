import { ArnFormat, CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  CONSOLE_ENV,
  CONSOLE_FUNCTION_ENV,
  type ConsoleDeployment,
  RUNBOOK_KINDS,
  type RunbookKind,
} from '../core/console-deployment';
import type { BackupBucket } from './backup-bucket';
import type { ConsoleConfig } from './config';
import { runbookNames } from './console-deployment';
import { acknowledgeWildcards, wildcardResource } from './nag';
import type { WorkflowFunctions } from './workflow-functions';

export interface RunbooksProps {
  /** Where the request function is built. */
  readonly functions: WorkflowFunctions;
  /** The state machine each runbook starts. */
  readonly stateMachines: Record<RunbookKind, sfn.IStateMachine>;
  /** The store every request is given. */
  readonly store: BackupBucket;
  /** The configured databases and targets, and what the forms offer. */
  readonly deployment: ConsoleDeployment;
  /** Who approves a `clean` restore or a cutover, and whether one must. */
  readonly approval: Pick<ConsoleConfig, 'approvers' | 'minRequiredApprovals' | 'requireApproval'>;
}

/** `latest` or a backup id (core/store-keys.ts BACKUP_ID_PATTERN), as SSM checks a parameter. */
export const BACKUP_PARAMETER_PATTERN = '^(latest|[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6})$';

/** The execution statuses after which a workflow runs no more. */
const FINISHED = ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'];

/** A workflow's execution timeout (lib/state-machine.ts): the runbook waits as long. */
const WORKFLOW_TIMEOUT = Duration.hours(24);

/** An SSM Automation document (schemaVersion 0.3), as CloudFormation's `Content` takes it. */
export interface AutomationDocument {
  schemaVersion: '0.3';
  description: string;
  assumeRole: string;
  parameters: Record<string, Record<string, unknown>>;
  mainSteps: Record<string, unknown>[];
  outputs: string[];
}

export interface RunbookDocumentOptions {
  readonly deployment: ConsoleDeployment;
  readonly approval: RunbooksProps['approval'];
  readonly roleArn: string;
  readonly requestFunctionArn: string;
  readonly stateMachineArn: string;
}

/** The choice that needs an approval, per kind: a parameter and its value. */
const GATED: Partial<Record<RunbookKind, { parameter: string; value: string; message: string }>> = {
  restore: {
    parameter: 'Mode',
    value: 'clean',
    message:
      'pgferry: restore backup {{Backup}} of {{Database}} into {{Target}} in clean mode: the target database is replaced (a safety backup of it is taken first). Approve to start the restore.',
  },
  migrate: {
    parameter: 'Cutover',
    value: 'ecs-services',
    message:
      "pgferry: migrate {{Database}} into {{Target}} with cutover: the target's configured ECS services are scaled down and up again to {{CutoverDesiredCount}}. Approve to start the migration.",
  },
};

/** Whether a runbook of `kind` may be built: restores and migrations need a target. */
export function runbookTargets(deployment: ConsoleDeployment, kind: RunbookKind): string[] | undefined {
  if (kind === 'restore') {
    return [
      ...deployment.targets.map((t) => t.id),
      ...deployment.databases.filter((d) => d.restoreTarget).map((d) => d.id),
    ];
  }
  if (kind === 'migrate') return deployment.targets.map((t) => t.id);
  return undefined;
}

/**
 * The runbook of `kind`: its parameters are the form (ids from the configuration, the backup
 * checked by pattern, modes from a list), its steps build the request (the request function),
 * wait for an approval where the choice needs one, start the workflow, wait for it and output
 * its result; the runbook fails when the workflow did not succeed.
 */
export function runbookDocument(kind: RunbookKind, options: RunbookDocumentOptions): AutomationDocument {
  const { deployment, approval } = options;
  const databases = deployment.databases.map((d) => d.id);
  const targets = runbookTargets(deployment, kind) ?? [];
  const parameters: AutomationDocument['parameters'] = {
    Database: {
      type: 'String',
      description: 'The configured database (its id)',
      allowedValues: databases,
    },
  };
  const payload: Record<string, string> = { kind, database: '{{Database}}' };
  if (kind === 'restore' || kind === 'migrate') {
    parameters.Target = {
      type: 'String',
      description:
        kind === 'restore'
          ? 'The configured target to restore into (its id)'
          : 'The configured target to migrate into (its id)',
      allowedValues: targets,
    };
    payload.target = '{{Target}}';
  }
  if (kind === 'restore' || kind === 'verify') {
    parameters.Backup = {
      type: 'String',
      description: '"latest", or a backup id such as 20261202T021500Z-3fa9c1 (pgferry list)',
      default: 'latest',
      allowedPattern: BACKUP_PARAMETER_PATTERN,
    };
    payload.backup = '{{Backup}}';
  }
  if (kind === 'restore') {
    parameters.Mode = {
      type: 'String',
      description:
        'create: a new database (refused if it exists); clean: replace the target database, after a safety backup of it and an approval',
      default: 'create',
      allowedValues: deployment.offers.cleanRestore ? ['create', 'clean'] : ['create'],
    };
    payload.mode = '{{Mode}}';
  }
  if (kind === 'migrate') {
    parameters.Cutover = {
      type: 'String',
      description:
        "none; or ecs-services: scale the target's configured ECS services down before the copy and up after (needs an approval)",
      default: 'none',
      allowedValues: deployment.offers.cutover ? ['none', 'ecs-services'] : ['none'],
    };
    parameters.CutoverDesiredCount = {
      type: 'Integer',
      description: 'With cutover: the tasks each service is scaled up to afterwards',
      default: 1,
    };
    parameters.FreezeSource = {
      type: 'Boolean',
      description: 'Make the source read-only while it is copied (no write is lost)',
      default: false,
    };
    payload.cutover = '{{Cutover}}';
    payload.cutoverDesiredCount = '{{CutoverDesiredCount}}';
    payload.freezeSource = '{{FreezeSource}}';
  }

  const gate = GATED[kind];
  const offered = gate && (parameters[gate.parameter].allowedValues as string[]).includes(gate.value);
  const approvalSteps =
    gate && offered && approval.requireApproval
      ? [
          {
            name: 'ApprovalNeeded',
            action: 'aws:branch',
            inputs: {
              Choices: [{ NextStep: 'Approve', Variable: `{{${gate.parameter}}}`, StringEquals: gate.value }],
              Default: 'Start',
            },
          },
          {
            name: 'Approve',
            action: 'aws:approve',
            timeoutSeconds: Duration.days(7).toSeconds(),
            onFailure: 'Abort',
            inputs: {
              Approvers: [...approval.approvers],
              MinRequiredApprovals: approval.minRequiredApprovals,
              Message: gate.message,
            },
            nextStep: 'Start',
          },
        ]
      : [];
  const describe = {
    Service: 'stepfunctions',
    Api: 'DescribeExecution',
    executionArn: '{{Start.ExecutionArn}}',
  };
  return {
    schemaVersion: '0.3',
    description: `pgferry: ${DESCRIPTIONS[kind]}`,
    assumeRole: options.roleArn,
    parameters,
    mainSteps: [
      {
        name: 'Request',
        action: 'aws:invokeLambdaFunction',
        description: "Builds the workflow's request from the configuration: refuses what is not configured",
        onFailure: 'Abort',
        inputs: { FunctionName: options.requestFunctionArn, InputPayload: payload },
      },
      ...approvalSteps,
      {
        name: 'Start',
        action: 'aws:executeAwsApi',
        onFailure: 'Abort',
        inputs: {
          Service: 'stepfunctions',
          Api: 'StartExecution',
          stateMachineArn: options.stateMachineArn,
          // The automation's id: the run is `<kind>-<id>` in the API and `pgferry status`.
          name: '{{automation:EXECUTION_ID}}',
          input: '{{Request.Payload}}',
        },
        outputs: [{ Name: 'ExecutionArn', Selector: '$.executionArn', Type: 'String' }],
      },
      {
        name: 'Wait',
        action: 'aws:waitForAwsResourceProperty',
        timeoutSeconds: WORKFLOW_TIMEOUT.toSeconds(),
        inputs: { ...describe, PropertySelector: '$.status', DesiredValues: FINISHED },
      },
      {
        name: 'Result',
        action: 'aws:executeAwsApi',
        inputs: describe,
        outputs: [
          { Name: 'Status', Selector: '$.status', Type: 'String' },
          { Name: 'Report', Selector: '$.output', Type: 'String' },
          { Name: 'Error', Selector: '$.error', Type: 'String' },
          { Name: 'Cause', Selector: '$.cause', Type: 'String' },
        ],
      },
      {
        name: 'Succeeded',
        action: 'aws:assertAwsResourceProperty',
        description:
          'Fails the runbook when the workflow did not succeed (its error and cause are in the outputs)',
        inputs: { ...describe, PropertySelector: '$.status', DesiredValues: ['SUCCEEDED'] },
        isEnd: true,
      },
    ],
    outputs: ['Start.ExecutionArn', 'Result.Status', 'Result.Report', 'Result.Error', 'Result.Cause'],
  };
}

const DESCRIPTIONS: Record<RunbookKind, string> = {
  backup: 'back up a configured database now, as its schedule does (the backup is filed as manual)',
  verify: 'verify a backup: restore it into a throwaway server in a task and check it (touches no database)',
  restore:
    'restore a backup into a configured target; clean mode replaces the target database and waits for an approval',
  migrate: 'migrate a configured database into a configured target; a cutover waits for an approval',
};

/**
 * The AWS console's forms: a Systems Manager Automation runbook per workflow (`<stack>-Backup`,
 * `-Verify`, `-Restore`, `-Migrate`; restore and migrate only with a target), whose parameters are
 * chosen from the configuration. Each runs as a role of its own that may invoke the request
 * function and start and describe executions of its workflow, nothing else. Who may run a runbook
 * is a separate grant (`runPolicies`, and `approvePolicy` for approvers), attached by you.
 */
export class Runbooks extends Construct {
  readonly names: Partial<Record<RunbookKind, string>> = {};
  readonly documents: Partial<Record<RunbookKind, ssm.CfnDocument>> = {};
  /** Each runbook's automation role. */
  readonly roles: Partial<Record<RunbookKind, iam.Role>> = {};
  /** Builds each workflow's request from the form's ids (lambdas/console/request). */
  readonly requestFunction: lambda.IFunction;
  /** May run a runbook (and follow its automations), per kind. */
  readonly runPolicies: Partial<Record<RunbookKind, iam.ManagedPolicy>> = {};
  /** May approve (or reject) a runbook's pending approval, when named an approver. */
  readonly approvePolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: RunbooksProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const names = runbookNames(stack.stackName);
    this.requestFunction = props.functions.add('RunbookRequest', {
      folder: 'console/request',
      name: 'runbook-request',
      description: "pgferry: builds a runbook's workflow request from the configuration",
      timeout: Duration.seconds(10),
      environment: { [CONSOLE_FUNCTION_ENV.store]: props.store.storeUrl },
      define: { [`process.env.${CONSOLE_ENV}`]: JSON.stringify(JSON.stringify(props.deployment)) },
    });
    const automationExecutions = stack.formatArn({
      service: 'ssm',
      resource: 'automation-execution',
      resourceName: '*',
    });
    for (const kind of RUNBOOK_KINDS) {
      const targets = runbookTargets(props.deployment, kind);
      if (targets && targets.length === 0) continue;
      const Kind = `${kind[0].toUpperCase()}${kind.slice(1)}`;
      const machine = props.stateMachines[kind];
      const role = new iam.Role(this, `${Kind}Role`, {
        description: `pgferry: runs the ${names[kind]} runbook (starts the ${kind} workflow only)`,
        assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com').withConditions({
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': automationExecutions },
        }),
      });
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['lambda:InvokeFunction'],
          resources: [this.requestFunction.functionArn],
        }),
      );
      machine.grantStartExecution(role);
      machine.grantExecution(role, 'states:DescribeExecution');
      acknowledgeWildcards(role, {
        [wildcardResource(this, executionsOf(machine))]:
          `the ${kind} workflow's executions (named by the automation's id at run time): described while the runbook waits`,
      });
      const document = new ssm.CfnDocument(this, Kind, {
        name: names[kind],
        documentType: 'Automation',
        documentFormat: 'JSON',
        // A named document is updated in place (a new version), not replaced under the same name.
        updateMethod: 'NewVersion',
        content: runbookDocument(kind, {
          deployment: props.deployment,
          approval: props.approval,
          roleArn: role.roleArn,
          requestFunctionArn: this.requestFunction.functionArn,
          stateMachineArn: machine.stateMachineArn,
        }),
      });
      this.names[kind] = names[kind];
      this.documents[kind] = document;
      this.roles[kind] = role;
      this.runPolicies[kind] = this.runPolicy(Kind, names[kind], role, automationExecutions);
      new CfnOutput(stack, `Runbook${Kind}PolicyArn`, {
        description: `Attach to a role that may run the ${names[kind]} runbook`,
        value: this.runPolicies[kind].managedPolicyArn,
      });
    }
    this.approvePolicy = new iam.ManagedPolicy(this, 'ApprovePolicy', {
      description:
        "pgferry runbooks: may approve or reject a clean restore or a cutover (SSM also checks the runbook's approvers)",
      statements: [
        new iam.PolicyStatement({
          actions: [
            'ssm:SendAutomationSignal',
            'ssm:GetAutomationExecution',
            'ssm:DescribeAutomationStepExecutions',
          ],
          resources: [automationExecutions],
        }),
        new iam.PolicyStatement({ actions: ['ssm:DescribeAutomationExecutions'], resources: ['*'] }),
      ],
    });
    acknowledgeWildcards(this.approvePolicy, {
      [wildcardResource(this, automationExecutions)]:
        "automation executions are named at run time; SSM lets only the runbook's configured approvers signal its approval step",
      'Resource::*': 'ssm:DescribeAutomationExecutions accepts no narrower resource',
    });
    new CfnOutput(stack, 'RunbookApprovePolicyArn', {
      description:
        "Attach to the approvers' roles (console.approvers): may approve a runbook's approval step",
      value: this.approvePolicy.managedPolicyArn,
    });
  }

  /**
   * May run one runbook: start its automation (passing its role to SSM), follow and stop it, see
   * the form. The role it passes may start only that runbook's workflow.
   */
  private runPolicy(Kind: string, name: string, role: iam.Role, executions: string): iam.ManagedPolicy {
    const stack = Stack.of(this);
    const definition = stack.formatArn({
      service: 'ssm',
      resource: 'automation-definition',
      resourceName: `${name}:*`,
    });
    const document = stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name });
    const policy = new iam.ManagedPolicy(this, `Run${Kind}Policy`, {
      description: `pgferry runbooks: may run ${name} and follow its automations`,
      statements: [
        new iam.PolicyStatement({ actions: ['ssm:StartAutomationExecution'], resources: [definition] }),
        new iam.PolicyStatement({
          actions: ['iam:PassRole'],
          resources: [role.roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
        }),
        new iam.PolicyStatement({
          actions: ['ssm:DescribeDocument', 'ssm:GetDocument', 'ssm:DescribeDocumentParameters'],
          resources: [document],
        }),
        new iam.PolicyStatement({
          actions: [
            'ssm:GetAutomationExecution',
            'ssm:DescribeAutomationStepExecutions',
            'ssm:StopAutomationExecution',
          ],
          resources: [executions],
        }),
        new iam.PolicyStatement({
          actions: ['ssm:DescribeAutomationExecutions', 'ssm:ListDocuments'],
          resources: ['*'],
        }),
      ],
    });
    acknowledgeWildcards(policy, {
      [wildcardResource(this, definition)]:
        "any version of this one runbook (the form's $DEFAULT, or a version chosen)",
      [wildcardResource(this, executions)]:
        'automation executions are named at run time: following and stopping one the caller started',
      'Resource::*': 'ssm:DescribeAutomationExecutions and ssm:ListDocuments accept no narrower resource',
    });
    return policy;
  }
}

/** `arn:…:execution:<machine>:*`: the executions of a state machine. */
function executionsOf(machine: sfn.IStateMachine): string {
  const stack = Stack.of(machine);
  const { resourceName } = stack.splitArn(machine.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME);
  return stack.formatArn({
    service: 'states',
    resource: 'execution',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    resourceName: `${resourceName}:*`,
  });
}
