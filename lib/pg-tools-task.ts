import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { PG_TOOLS_CONTAINER, TASK_ENV } from '../core/workflows';
import { REPO_ROOT } from './paths';

/** Where the container image keeps the PostgreSQL client tools of every supported major. */
export const CONTAINER_PG_BIN_DIRS = [13, 14, 15, 16, 17, 18]
  .map((m) => `/usr/lib/postgresql/${m}/bin`)
  .join(':');

export interface PgToolsTaskProps {
  /** The VPC the task runs in: it must reach the databases and S3. */
  readonly vpc: ec2.IVpc;
  /**
   * Subnets for the task.
   * @default private subnets with egress
   */
  readonly subnets?: ec2.SubnetSelection;
  /**
   * vCPU units of the task (1024 = 1 vCPU).
   * @default 1024
   */
  readonly cpu?: number;
  /**
   * Memory of the task in MiB.
   * @default 2048
   */
  readonly memoryLimitMiB?: number;
  /**
   * How long the task's logs are kept.
   * @default one month
   */
  readonly logRetention?: logs.RetentionDays;
}

/** The Fargate task that runs pg_dump/pg_restore: the `containers/pg-tools` image. */
export class PgToolsTask extends Construct {
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly securityGroup: ec2.SecurityGroup;
  readonly subnets: ec2.SubnetSelection;

  constructor(scope: Construct, id: string, props: PgToolsTaskProps) {
    super(scope, id);
    this.subnets = props.subnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: props.cpu ?? 1024,
      memoryLimitMiB: props.memoryLimitMiB ?? 2048,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.container = this.taskDefinition.addContainer(PG_TOOLS_CONTAINER, {
      containerName: PG_TOOLS_CONTAINER,
      image: ecs.ContainerImage.fromAsset(REPO_ROOT, {
        file: 'containers/pg-tools/Dockerfile',
        exclude: ['node_modules', 'dist', 'cdk.out', '.cache', '.git', 'coverage', 'demo-store'],
      }),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'pg-tools', logGroup }),
      environment: { [TASK_ENV.binDirs]: CONTAINER_PG_BIN_DIRS },
      readonlyRootFilesystem: false,
    });
    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'pgferry pg-tools task: reaches databases and S3',
      allowAllOutbound: true,
    });
  }

  /** Lets the task read and write backups in `bucket`. */
  grantStore(bucket: s3.IBucket): void {
    bucket.grantReadWrite(this.taskDefinition.taskRole);
    bucket.grantDelete(this.taskDefinition.taskRole);
  }
}
