import * as path from 'node:path';
import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { DatabaseBindings } from '../core/bindings';
import { encodeBindings } from '../core/deployment';
import {
  DEFAULT_RETENTION,
  formatRetentionPolicy,
  RETENTION_ENV,
  type RetentionPolicy,
} from '../core/retention';
import type { DatabaseLogin } from './database-logins';
import { acknowledge, acknowledgeWildcards } from './nag';
import { REPO_ROOT } from './paths';

/** One handler: `lambdas/<workflow>/<step>/handler.ts`. */
export interface WorkflowFunctionSpec {
  /** The handler's folder under `lambdas/`: `<workflow>/<step>`. */
  readonly folder: string;
  /** The function's name in its logs (`pgferry-<name>`, POWERTOOLS_SERVICE_NAME), as its logger names it. */
  readonly name: string;
  readonly description: string;
  readonly timeout: Duration;
  /**
   * Whether the function connects to databases: it then runs in the database clients' security
   * group and trusts the Amazon RDS certificate authorities.
   * @default false: in the AWS API clients' security group, reaching only the VPC endpoints and S3
   */
  readonly connectsToDatabases?: boolean;
  /**
   * With `connectsToDatabases`: the function is granted its logins by its workflow, not every
   * configured login by `grantDatabaseLogins`.
   * @default false
   */
  readonly ownLogins?: boolean;
  /**
   * More environment variables.
   * @default none
   */
  readonly environment?: Record<string, string>;
  /**
   * More constants compiled into the bundle (esbuild `define`), beside the bindings: what an
   * execution or an editor of the environment must not change (core/console-deployment.ts).
   * @default none
   */
  readonly define?: Record<string, string>;
}

export interface WorkflowFunctionsProps {
  /** The VPC every function runs in. */
  readonly vpc: ec2.IVpc;
  /**
   * The functions' subnets.
   * @default the VPC's private subnets
   */
  readonly subnets?: ec2.SubnetSelection;
  /** The security group of the functions that connect to databases. */
  readonly databaseClients: ec2.ISecurityGroup;
  /** The security group of the functions that call AWS APIs only. */
  readonly awsApiClients: ec2.ISecurityGroup;
  /**
   * How long the functions' logs are kept.
   * @default one month
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Memory of each function in MiB.
   * @default 512
   */
  readonly memorySize?: number;
  /**
   * The retention policy by which the record step tags backups' retention tiers.
   * @default core/retention.ts's DEFAULT_RETENTION
   */
  readonly retention?: RetentionPolicy;
  /**
   * The deployment's bindings (core/bindings.ts), compiled into every function's bundle: what
   * each refuses an execution input against, and what tells it it runs on AWS
   * (core/deployment.ts). Compiled in rather than set in the environment, which holds 4 KiB and
   * could be changed without changing the code.
   */
  readonly bindings: DatabaseBindings;
}

const DEFAULTS = {
  logRetention: logs.RetentionDays.ONE_MONTH,
  memorySize: 512,
  retention: DEFAULT_RETENTION,
} as const;

/**
 * The Lambda runtime's bundle of Amazon certificate authorities (RDS included), which Node.js 20
 * and later load only when asked to (NODE_EXTRA_CA_CERTS).
 */
const LAMBDA_AMAZON_CA_BUNDLE = '/var/runtime/ca-cert.pem';

/**
 * Where every workflow's Lambda handlers are built (each workflow construct adds its own, and
 * grants them what they need): Node.js 22 on arm64, bundled with esbuild, X-Ray tracing on,
 * Powertools JSON logs into their own log groups. All run in the VPC, so none can reach the
 * internet: those that connect to databases in the database clients' security group, the others
 * in the AWS API clients' (the VPC endpoints and S3 only). The functions are children of this
 * construct, whichever workflow adds them: their logical ids (`FunctionsRecord…`) are those of the
 * deployed stacks, whose functions and retained log groups a new id would replace and orphan.
 */
export class WorkflowFunctions extends Construct {
  /** Every function, in the order the workflows added them. */
  readonly all: nodejs.NodejsFunction[] = [];
  /** The functions that connect to databases. */
  readonly databaseClients: nodejs.NodejsFunction[] = [];
  /** The environment of a function that records backups: the retention policy it tags tiers by. */
  readonly retentionEnvironment: Readonly<Record<string, string>>;
  /** The bindings as every function's bundle holds them (core/deployment.ts `encodeBindings`). */
  readonly encodedBindings: string;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: WorkflowFunctionsProps,
  ) {
    super(scope, id);
    this.encodedBindings = encodeBindings(props.bindings);
    this.retentionEnvironment = {
      [RETENTION_ENV]: formatRetentionPolicy(props.retention ?? DEFAULTS.retention),
    };
  }

  /** Adds the function of `lambdas/<spec.folder>/handler.ts`. */
  add(id: string, spec: WorkflowFunctionSpec): nodejs.NodejsFunction {
    const connects = spec.connectsToDatabases ?? false;
    const fn = new nodejs.NodejsFunction(this, id, {
      entry: path.join(REPO_ROOT, 'lambdas', spec.folder, 'handler.ts'),
      handler: 'handler',
      description: spec.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: this.props.memorySize ?? DEFAULTS.memorySize,
      timeout: spec.timeout,
      vpc: this.props.vpc,
      vpcSubnets: this.props.subnets,
      securityGroups: [connects ? this.props.databaseClients : this.props.awsApiClients],
      tracing: lambda.Tracing.ACTIVE,
      logGroup: new logs.LogGroup(this, `${id}Logs`, {
        retention: this.props.logRetention ?? DEFAULTS.logRetention,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
      environment: {
        POWERTOOLS_SERVICE_NAME: `pgferry-${spec.name}`,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        ...(connects ? { NODE_EXTRA_CA_CERTS: LAMBDA_AMAZON_CA_BUNDLE } : {}),
        ...spec.environment,
      },
      bundling: {
        target: 'node22',
        minify: true,
        sourceMap: true,
        // core/deployment.ts reads this expression: in the bundle it is the deployment's bindings.
        define: { 'process.env.PGFERRY_BINDINGS': JSON.stringify(this.encodedBindings), ...spec.define },
        // The runtime provides the AWS SDK v3; pg's optional native binding is never used.
        externalModules: ['@aws-sdk/*', 'pg-native'],
      },
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      projectRoot: REPO_ROOT,
    });
    acknowledge(
      fn,
      'AwsSolutions-L1',
      'Node.js 22 is the runtime pgferry is built and tested on (package.json engines, the container, the CLI)',
    );
    acknowledge(
      fn,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      "the AWS-managed execution policy: writes to the function's own log group",
    );
    acknowledge(
      fn,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      'the AWS-managed policy that lets Lambda attach the function to the VPC (network interfaces)',
    );
    acknowledgeWildcards(fn, {
      'Resource::*': 'X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords) accepts no narrower resource',
    });
    this.all.push(fn);
    if (connects && !spec.ownLogins) this.databaseClients.push(fn);
    return fn;
  }

  /** Lets the functions that connect to databases (those added so far) log in to these databases. */
  grantDatabaseLogins(logins: readonly DatabaseLogin[]): void {
    for (const fn of this.databaseClients) for (const login of logins) login.grantLogin(fn);
  }
}
