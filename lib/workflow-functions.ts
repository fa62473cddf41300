import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { REPO_ROOT } from './paths';

export interface WorkflowFunctionsProps {
  /** The VPC: preflight must reach the databases. */
  readonly vpc: ec2.IVpc;
  /**
   * Subnets for the functions.
   * @default private subnets with egress
   */
  readonly subnets?: ec2.SubnetSelection;
  /**
   * How long the functions' logs are kept.
   * @default one month
   */
  readonly logRetention?: logs.RetentionDays;
}

/** The Lambda handlers the workflows call: one per folder under `lambdas/`. */
export class WorkflowFunctions extends Construct {
  readonly preflight: nodejs.NodejsFunction;
  readonly record: nodejs.NodejsFunction;
  readonly cleanup: nodejs.NodejsFunction;
  readonly restorePreflight: nodejs.NodejsFunction;
  readonly restoreRecord: nodejs.NodejsFunction;
  readonly all: nodejs.NodejsFunction[];

  constructor(scope: Construct, id: string, props: WorkflowFunctionsProps) {
    super(scope, id);
    const make = (name: string, description: string, timeout: Duration) =>
      new nodejs.NodejsFunction(this, name, {
        entry: path.join(REPO_ROOT, 'lambdas', folderOf(name), 'handler.ts'),
        handler: 'handler',
        description,
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 512,
        timeout,
        vpc: props.vpc,
        vpcSubnets: props.subnets,
        tracing: lambda.Tracing.ACTIVE,
        logGroup: new logs.LogGroup(this, `${name}Logs`, {
          retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        }),
        environment: {
          POWERTOOLS_SERVICE_NAME: `pgferry-${folderOf(name)}`,
          POWERTOOLS_LOG_LEVEL: 'INFO',
        },
        bundling: {
          target: 'node22',
          minify: true,
          sourceMap: true,
          // pg's optional native binding is never used.
          externalModules: ['@aws-sdk/*', 'pg-native'],
        },
        depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
        projectRoot: REPO_ROOT,
      });
    this.preflight = make(
      'Preflight',
      'pgferry: checks source and store, plans a backup',
      Duration.minutes(2),
    );
    this.record = make('Record', 'pgferry: verifies a dump and writes its manifest', Duration.minutes(5));
    this.cleanup = make('Cleanup', "pgferry: removes a failed backup's objects", Duration.minutes(5));
    this.restorePreflight = make(
      'RestorePreflight',
      'pgferry: resolves a backup and checks a restore target',
      Duration.minutes(2),
    );
    this.restoreRecord = make('RestoreRecord', "pgferry: reads a restore's report", Duration.minutes(2));
    this.all = [this.preflight, this.record, this.cleanup, this.restorePreflight, this.restoreRecord];
  }

  /** Lets the functions read, write and delete backups in `bucket`. */
  grantStore(bucket: s3.IBucket): void {
    for (const fn of this.all) bucket.grantReadWrite(fn);
    bucket.grantDelete(this.cleanup);
  }
}

/** `RestorePreflight` → `restore-preflight`: the handler's folder under lambdas/. */
function folderOf(name: string): string {
  return name.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
}
