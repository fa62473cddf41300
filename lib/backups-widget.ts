import { CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { CONSOLE_ENV, CONSOLE_FUNCTION_ENV, type ConsoleDeployment } from '../core/console-deployment';
import type { BackupBucket } from './backup-bucket';
import { deployedRunbooks } from './console-deployment';
import type { WorkflowFunctions } from './workflow-functions';

export interface BackupsWidgetProps {
  /** Where the widget's function is built (in the VPC, in the AWS API clients' group). */
  readonly functions: WorkflowFunctions;
  /** The store whose catalog it reads (manifests and verification reports only). */
  readonly store: BackupBucket;
  /** The configured databases (and the runbooks it links to). */
  readonly deployment: ConsoleDeployment;
  /** The dashboard it is added to (first, when added before the workflows' widgets). */
  readonly dashboard: cloudwatch.Dashboard;
}

/**
 * The dashboard's backups: a CloudWatch custom widget whose function (lambdas/console/widget)
 * renders every configured database's newest backup, verification and 30-day trend as HTML, with
 * links to its runbooks. The function may list the store and read its manifests and verification
 * reports, nothing else; CloudWatch invokes it with the viewer's own credentials, so a viewer
 * needs `viewPolicy` (lambda:InvokeFunction on it).
 */
export class BackupsWidget extends Construct {
  readonly handler: lambda.IFunction;
  readonly widget: cloudwatch.CustomWidget;
  /** May see the widget: invoke its function. */
  readonly viewPolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: BackupsWidgetProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.handler = props.functions.add('BackupsWidget', {
      folder: 'console/widget',
      name: 'backups-widget',
      description: "pgferry: the dashboard's backups widget (CloudWatch custom widget)",
      timeout: Duration.seconds(60),
      environment: {
        [CONSOLE_FUNCTION_ENV.store]: props.store.storeUrl,
        [CONSOLE_FUNCTION_ENV.runbooks]: JSON.stringify(deployedRunbooks(stack.stackName, props.deployment)),
      },
      define: { [`process.env.${CONSOLE_ENV}`]: JSON.stringify(JSON.stringify(props.deployment)) },
    });
    props.store.grantReadCatalog(this.handler);
    this.widget = new cloudwatch.CustomWidget({
      functionArn: this.handler.functionArn,
      title: 'pgferry: backups (newest, verification, last 30 days; links run the runbooks)',
      width: 24,
      height: Math.min(24, 4 + props.deployment.databases.length),
      updateOnRefresh: true,
      updateOnResize: false,
      updateOnTimeRangeChange: false,
    });
    props.dashboard.addWidgets(this.widget);
    this.viewPolicy = new iam.ManagedPolicy(this, 'ViewPolicy', {
      description: "pgferry: may see the dashboard's backups widget (CloudWatch invokes it as the viewer)",
      statements: [
        new iam.PolicyStatement({
          actions: ['lambda:InvokeFunction'],
          resources: [this.handler.functionArn],
        }),
      ],
    });
    new CfnOutput(stack, 'BackupsWidgetViewPolicyArn', {
      description: 'Attach to the roles that view the dashboard: may see its backups widget',
      value: this.viewPolicy.managedPolicyArn,
    });
  }
}
