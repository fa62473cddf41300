import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { DatabaseBindings } from '../core/bindings';
import { BINDINGS_ENV, encodeBindings } from '../core/deployment';
import { PG_TOOLS_CONTAINER, runnerCommandOverride, TASK_ENV } from '../core/workflows';
import type { BackupBucket } from './backup-bucket';
import type { DatabaseLogin } from './database-logins';
import { acknowledge, acknowledgeWildcards } from './nag';
import { REPO_ROOT } from './paths';

/** Where the container image keeps the PostgreSQL client tools of every supported major. */
export const CONTAINER_PG_BIN_DIRS = [13, 14, 15, 16, 17, 18]
  .map((m) => `/usr/lib/postgresql/${m}/bin`)
  .join(':');

/** The images built from containers/pg-tools/Dockerfile (its build targets). */
export type PgToolsImage =
  /** Client tools only: backup, restore, migrate. */
  | 'tools'
  /** The client tools plus the servers of every major and all locales: verify's throwaway server. */
  | 'verify';

/** The CPU architectures the image and the task may have. */
export type PgToolsArchitecture = 'arm64' | 'x86_64';

const ARCHITECTURES: Record<PgToolsArchitecture, { cpu: ecs.CpuArchitecture; platform: ecrAssets.Platform }> =
  {
    arm64: { cpu: ecs.CpuArchitecture.ARM64, platform: ecrAssets.Platform.LINUX_ARM64 },
    x86_64: { cpu: ecs.CpuArchitecture.X86_64, platform: ecrAssets.Platform.LINUX_AMD64 },
  };

export interface PgToolsTaskProps {
  /** The VPC the task runs in: it must reach the databases and S3. */
  readonly vpc: ec2.IVpc;
  /**
   * The cluster the task runs in.
   * @default a new cluster with Container Insights
   */
  readonly cluster?: ecs.Cluster;
  /**
   * Which image the task runs.
   * @default tools
   */
  readonly image?: PgToolsImage;
  /**
   * The CPU architecture of the image and the task.
   * @default arm64
   */
  readonly architecture?: PgToolsArchitecture;
  /**
   * Subnets for the task.
   * @default private subnets with egress
   */
  readonly subnets?: ec2.SubnetSelection;
  /**
   * The task's security group.
   * @default a new group that allows HTTPS out and nothing else (add database access to it)
   */
  readonly securityGroup?: ec2.ISecurityGroup;
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
   * Ephemeral storage of the task in GiB (21–200). It backs /tmp, the only writable path: the
   * root file system is read-only.
   * @default Fargate's default, 20 GiB
   */
  readonly ephemeralStorageGiB?: number;
  /**
   * How long the task's logs are kept.
   * @default one month
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The deployment's bindings (core/bindings.ts), set in the task definition's environment: the
   * runner checks every job against them before it connects (core/deployment.ts). No execution
   * can change them: the workflows' container overrides name only the action and the job.
   */
  readonly bindings: DatabaseBindings;
  /**
   * How long a run may make no progress before the runner stops it (its progress watchdog).
   * @default 10 minutes
   */
  readonly stallTimeout?: Duration;
}

const DEFAULTS = {
  cpu: 1024,
  memoryLimitMiB: 2048,
  logRetention: logs.RetentionDays.ONE_MONTH,
  image: 'tools',
  architecture: 'arm64',
  stallTimeout: Duration.minutes(10),
} as const;

/**
 * The most characters the bindings may take in the task definition, whose whole JSON ECS limits
 * to 64 KiB: half of it, leaving room for the rest. 150 logins (the configuration's most) take
 * about 3,300 encoded, 54,000 as plain JSON (test/lib/runtime-bindings.test.ts).
 */
export const MAX_TASK_BINDINGS_CHARS = 32 * 1024;

/**
 * How a task that could not start is retried: RunTask's capacity errors ("Capacity is unavailable
 * at this time", the account's Fargate vCPU quota reached — Step Functions reports both as
 * `ECS.AmazonECSException`) and ECS's own failures. A 02:00 burst of a fleet waits for capacity
 * instead of failing: 30 s doubling to 5 minutes, 15 attempts, each wait drawn at random below
 * its nominal length (full jitter) so that tasks refused together do not retry together — at
 * most 62.5 minutes of waiting, about half that expected (docs/aws.md, "Fleets").
 */
export const RUN_TASK_START_RETRY: sfn.RetryProps = {
  errors: ['ECS.AmazonECSException', 'ECS.ServerException'],
  interval: Duration.seconds(30),
  backoffRate: 2,
  maxDelay: Duration.minutes(5),
  jitterStrategy: sfn.JitterType.FULL,
  maxAttempts: 15,
};

/** The Dockerfile of the pg-tools images, relative to the repository root (the build context). */
export const PG_TOOLS_DOCKERFILE = 'containers/pg-tools/Dockerfile';

/** What the image build reads from the repository: everything else is left out of the context. */
export const PG_TOOLS_BUILD_CONTEXT = [
  'package.json',
  'package-lock.json',
  'core',
  'containers/pg-tools/src',
  PG_TOOLS_DOCKERFILE,
];

/**
 * A Fargate task that runs the pg-tools runner: an image of `containers/pg-tools/Dockerfile`,
 * built for the task's architecture, as a non-root user on a read-only root file system, logging
 * to its own log group. Its role may use only the backups prefix of the store and the logins it is
 * granted.
 */
export class PgToolsTask extends Construct {
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly subnets: ec2.SubnetSelection;
  readonly logGroup: logs.LogGroup;
  /**
   * The task's subnets by availability zone, as JSON (`{"eu-west-1a": ["subnet-…"]}`): what the
   * backup preflight places a dump by (core/deployment.ts `taskPlacement`, TASK_SUBNETS_ENV).
   */
  readonly subnetsByZone: string;

  constructor(scope: Construct, id: string, props: PgToolsTaskProps) {
    super(scope, id);
    this.subnets = props.subnets ?? { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    const byZone: Record<string, string[]> = {};
    for (const subnet of props.vpc.selectSubnets(this.subnets).subnets) {
      byZone[subnet.availabilityZone] = [...(byZone[subnet.availabilityZone] ?? []), subnet.subnetId];
    }
    this.subnetsByZone = Stack.of(this).toJsonString(byZone);
    this.cluster =
      props.cluster ??
      new ecs.Cluster(this, 'Cluster', {
        vpc: props.vpc,
        containerInsightsV2: ecs.ContainerInsights.ENABLED,
      });
    const architecture = ARCHITECTURES[props.architecture ?? DEFAULTS.architecture];
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: props.cpu ?? DEFAULTS.cpu,
      memoryLimitMiB: props.memoryLimitMiB ?? DEFAULTS.memoryLimitMiB,
      ephemeralStorageGiB: props.ephemeralStorageGiB,
      runtimePlatform: {
        cpuArchitecture: architecture.cpu,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? DEFAULTS.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.container = this.taskDefinition.addContainer(PG_TOOLS_CONTAINER, {
      containerName: PG_TOOLS_CONTAINER,
      image: ecs.ContainerImage.fromAsset(REPO_ROOT, {
        file: PG_TOOLS_DOCKERFILE,
        target: props.image ?? DEFAULTS.image,
        platform: architecture.platform,
        // Only what the build copies: any other file would change the asset's hash for nothing.
        exclude: ['*', ...PG_TOOLS_BUILD_CONTEXT.map((p) => `!${p}`)],
      }),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'pg-tools', logGroup: this.logGroup }),
      environment: {
        [TASK_ENV.binDirs]: CONTAINER_PG_BIN_DIRS,
        [TASK_ENV.stallTimeout]: String((props.stallTimeout ?? DEFAULTS.stallTimeout).toSeconds()),
        [BINDINGS_ENV]: taskBindings(props.bindings),
      },
      readonlyRootFilesystem: true,
    });
    this.taskDefinition.addVolume({ name: 'tmp' });
    this.container.addMountPoints({ sourceVolume: 'tmp', containerPath: '/tmp', readOnly: false });
    this.securityGroup =
      props.securityGroup ??
      new ec2.SecurityGroup(this, 'SecurityGroup', {
        vpc: props.vpc,
        description: 'pgferry pg-tools task',
        allowAllOutbound: false,
      });
    acknowledge(
      this.taskDefinition,
      'AwsSolutions-ECS2',
      "the variables set in the task definition are the client tools' path, the stall timeout and the deployment's bindings (hosts, users, secret ARNs: no secret); passwords are read from Secrets Manager at run time, by ARN",
    );
    acknowledgeWildcards(this.taskDefinition.obtainExecutionRole(), {
      'Resource::*': 'ecr:GetAuthorizationToken (image pull) accepts no narrower resource',
    });
  }

  /**
   * A `runTask.sync` state running the container with `action` (and its runner's Node flags:
   * runnerCommandOverride) on the job the state names
   * (`$.job`: the plan preflight stored, by reference — ECS takes 8,192 characters of overrides),
   * sized by `$.taskSize` and, with `placedByState`, in the subnets `$.placement.subnets` names.
   * Only failures to start the task are retried: a task that ran is never
   * repeated blindly.
   */
  runTaskState(
    scope: Construct,
    id: string,
    action: string,
    timeout: Duration,
    { placedByState = false }: { placedByState?: boolean } = {},
  ): tasks.EcsRunTask {
    const task = new SizedEcsRunTask(scope, id, placedByState, {
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      launchTarget: new tasks.EcsFargateLaunchTarget({ platformVersion: ecs.FargatePlatformVersion.LATEST }),
      subnets: this.subnets,
      securityGroups: [this.securityGroup],
      containerOverrides: [
        {
          containerDefinition: this.container,
          // Node's flags for this action's runner, where they are not the image's CMD.
          command: runnerCommandOverride(action),
          environment: [
            { name: TASK_ENV.action, value: action },
            { name: TASK_ENV.jobStore, value: sfn.JsonPath.stringAt('$.job.store') },
            { name: TASK_ENV.jobKey, value: sfn.JsonPath.stringAt('$.job.key') },
          ],
        },
      ],
      // Sized per run by preflight (`taskSize`), from what it measured.
      cpu: sfn.JsonPath.stringAt('$.taskSize.cpu'),
      memoryMiB: sfn.JsonPath.stringAt('$.taskSize.memoryMiB'),
      resultPath: sfn.JsonPath.DISCARD,
      taskTimeout: sfn.Timeout.duration(timeout),
    });
    task.addRetry(RUN_TASK_START_RETRY);
    return task;
  }

  /** Lets the task read and write backups (the dump, the globals and its report); it cannot tag or delete. */
  grantStore(store: BackupBucket): void {
    store.grantReadBackups(this.taskDefinition.taskRole);
    store.grantWriteBackups(this.taskDefinition.taskRole);
  }

  /** Lets the task log in to these databases (read their secrets at run time, or rds-db:connect). */
  grantDatabaseLogins(logins: readonly DatabaseLogin[]): void {
    for (const login of logins) login.grantLogin(this.taskDefinition.taskRole);
  }
}

/** The bindings as the task definition carries them, within `MAX_TASK_BINDINGS_CHARS`. */
function taskBindings(bindings: DatabaseBindings): string {
  const encoded = encodeBindings(bindings);
  if (encoded.length > MAX_TASK_BINDINGS_CHARS) {
    throw new Error(
      `the bindings of ${bindings.bindings.length} logins take ${encoded.length} characters encoded, more than the ${MAX_TASK_BINDINGS_CHARS} the task definition can hold (ECS takes 64 KiB in all)`,
    );
  }
  return encoded;
}

/**
 * `EcsRunTask` with the run's ephemeral storage overridden too (`taskSize`): ECS's RunTask
 * takes `overrides.ephemeralStorage`, which the construct does not expose.
 */
class SizedEcsRunTask extends tasks.EcsRunTask {
  /**
   * @param placedByState the task's subnets are the state's `placement.subnets` (the backup
   *   preflight's choice: the database's zone), not the construct's fixed ones
   */
  constructor(
    scope: Construct,
    id: string,
    private readonly placedByState: boolean,
    props: tasks.EcsRunTaskProps,
  ) {
    super(scope, id, props);
  }

  protected override _renderTask(topLevelQueryLanguage?: sfn.QueryLanguage): {
    Parameters: Record<string, unknown>;
  } {
    const rendered = super._renderTask(topLevelQueryLanguage) as { Parameters: Record<string, unknown> };
    const overrides = (rendered.Parameters.Overrides ?? {}) as Record<string, unknown>;
    rendered.Parameters.Overrides = {
      ...overrides,
      EphemeralStorage: { 'SizeInGiB.$': '$.taskSize.ephemeralStorageGiB' },
    };
    if (this.placedByState) {
      const network = rendered.Parameters.NetworkConfiguration as {
        AwsvpcConfiguration: Record<string, unknown>;
      };
      const { Subnets: _fixed, ...rest } = network.AwsvpcConfiguration;
      rendered.Parameters.NetworkConfiguration = {
        AwsvpcConfiguration: { ...rest, 'Subnets.$': '$.placement.subnets' },
      };
    }
    return rendered;
  }
}
