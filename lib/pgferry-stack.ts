import { CfnOutput, Duration, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { Construct } from 'constructs';
import { REQUEST_BODIES } from '../api/app';
import type { DatabaseBindings } from '../core/bindings';
import type { BackupRequestInput, ServerBackupRequestInput, VerifyRequest } from '../core/contracts';
import { isScoped } from '../core/postgres/dump-scope';
import type { RetentionPolicy } from '../core/retention';
import { PgferryApi } from './api';
import { BackupBucket } from './backup-bucket';
import { BackupWorkflow } from './backup-workflow';
import { BackupsWidget } from './backups-widget';
import { bindingsOf } from './bindings';
import {
  type DatabaseConfig,
  databaseRetention,
  type PgferryConfig,
  type ServerConfig,
  serverDatabaseRetention,
  serverRetention,
} from './config';
import { consoleDeploymentOf } from './console-deployment';
import { type DatabaseLogin, databaseLogin } from './database-logins';
import { placeDatabases } from './fleet';
import { MigrateWorkflow } from './migrate-workflow';
import { Monitoring } from './monitoring';
import { acknowledge, acknowledgeWildcards, wildcardResource } from './nag';
import { Network } from './network';
import { PgToolsTask } from './pg-tools-task';
import { RestoreWorkflow } from './restore-workflow';
import { RunEvents } from './run-events';
import { Runbooks } from './runbooks';
import { Schedules } from './schedules';
import { ServerBackupWorkflow } from './server-backup-workflow';
import type { Workflow } from './state-machine';
import { VerifyWorkflow } from './verify-workflow';
import { WorkflowFunctions } from './workflow-functions';

export interface PgferryStackProps extends StackProps {
  /** The deployment's configuration (lib/config.ts), validated. */
  readonly config: PgferryConfig;
}

/**
 * Feature flags this stack is written for, set on the stack itself so that `cdk synth`, the tests
 * and the ASL generation build the same template whatever App they run in.
 */
const FEATURE_FLAGS = {
  '@aws-cdk/core:enablePartitionLiterals': true,
  // ecs:RunTask on the task definition itself, not on every revision of its family.
  '@aws-cdk/aws-stepfunctions-tasks:fixRunEcsTaskPolicy': true,
  '@aws-cdk/aws-iam:minimizePolicies': true,
} as const;

/**
 * pgferry on AWS: the network, the backup store, the pg-tools tasks, the handlers, the workflows,
 * their schedules and their monitoring. Another workflow is one construct (`WorkflowProps` in,
 * `Workflow` out: it adds and grants its own functions) plus `addWorkflow`.
 */
export class PgferryStack extends Stack {
  readonly network: Network;
  readonly store: BackupBucket;
  readonly functions: WorkflowFunctions;
  readonly pgTools: PgToolsTask;
  readonly monitoring: Monitoring;
  readonly schedules: Schedules;
  readonly backup: BackupWorkflow;
  readonly restore: RestoreWorkflow;
  readonly verify: VerifyWorkflow;
  readonly migrate: MigrateWorkflow;
  /** Whole servers (`servers[]`): every database found at run time, as a backup set. */
  readonly serverBackup: ServerBackupWorkflow;
  /** The HTTP API (`api.enabled`, the default). */
  readonly api?: PgferryApi;
  /** With the API: an EventBridge event on the default bus for every finished run. */
  readonly runEvents?: RunEvents;
  /** The AWS console's runbooks (`console.enabled`, the default). */
  readonly runbooks?: Runbooks;
  /** The Fargate task of verifications: the image with the servers and locales. */
  readonly verifyTools: PgToolsTask;
  /** How the workflows log in to each configured database and target, by id. */
  readonly databaseLogins: ReadonlyMap<string, DatabaseLogin>;
  /**
   * Which login belongs to which server and database, and what each may be used for (backed up,
   * restored into): what the runtime checks an execution input against.
   */
  readonly bindings: DatabaseBindings;

  /** The configured availability zones, when given: then synthesis looks none up. */
  private readonly configuredZones?: string[];

  constructor(scope: Construct, id: string, props: PgferryStackProps) {
    super(scope, id, props);
    for (const [flag, value] of Object.entries(FEATURE_FLAGS)) this.node.setContext(flag, value);
    const { config } = props;
    this.configuredZones = config.vpc.availabilityZones;
    // Only a new VPC's subnets name their zones in the template.
    if (config.vpc.mode === 'create' && this.configuredZones) {
      acknowledge(
        this,
        'CloudFormation-Validate::W3010',
        'the availability zones in the template are the ones the configuration names (vpc.availabilityZones)',
      );
    }
    for (const [key, value] of Object.entries(config.tags)) Tags.of(this).add(key, value);

    this.network = new Network(this, 'Network', {
      existingVpc:
        config.vpc.mode === 'existing'
          ? ec2.Vpc.fromVpcAttributes(this, 'ExistingVpc', {
              vpcId: config.vpc.vpcId,
              vpcCidrBlock: config.vpc.cidr,
              availabilityZones: config.vpc.availabilityZones,
              isolatedSubnetIds: config.vpc.privateSubnetIds,
              isolatedSubnetRouteTableIds: config.vpc.privateSubnetRouteTableIds,
            })
          : undefined,
      vpcProps:
        config.vpc.mode === 'create'
          ? {
              ipAddresses: ec2.IpAddresses.cidr(config.vpc.cidr),
              ...(config.vpc.availabilityZones
                ? { availabilityZones: config.vpc.availabilityZones }
                : { maxAzs: config.vpc.maxAzs }),
            }
          : undefined,
      endpoints:
        config.vpc.mode === 'existing'
          ? {
              s3: config.vpc.endpoints.s3,
              interface: config.vpc.endpoints.interface,
              existingSecurityGroupIds: config.vpc.endpoints.securityGroupIds,
              allowIngressToExisting: config.vpc.endpoints.allowIngress,
            }
          : undefined,
      databases: [...config.databases, ...config.servers, ...config.targets].map((entry) => ({
        id: entry.id,
        port: entry.connection.port,
        securityGroupId: entry.network.securityGroupId,
        cidr: entry.network.cidr,
        allowIngress: entry.network.allowIngress,
      })),
    });
    const { vpc, subnets, databaseClients, awsApiClients } = this.network;

    this.store = new BackupBucket(this, 'Store', {
      retention: config.retention,
      databaseRetention: [
        ...config.databases.flatMap((db) => databaseRetention(config, db) ?? []),
        ...config.servers.flatMap((server) => [
          ...(serverRetention(config, server) ? [serverRetention(config, server) as RetentionPolicy] : []),
          ...Object.values(serverDatabaseRetention(config, server)),
        ]),
      ],
      bucketName: config.bucket.bucketName,
      objectLock: config.bucket.objectLock,
      noncurrentVersionExpiration: Duration.days(config.bucket.noncurrentVersionExpirationDays),
      accessLogsExpiration: Duration.days(config.bucket.accessLogsExpirationDays),
      readerRoleArns: config.bucket.readerRoleArns,
      breakGlassRoleArn: config.bucket.breakGlassRoleArn,
    });
    this.bindings = bindingsOf(config);
    this.databaseLogins = new Map(
      [...config.databases, ...config.servers, ...config.targets].map((entry) => [
        entry.id,
        databaseLogin(this, entry),
      ]),
    );
    const logins = [...this.databaseLogins.values()];

    this.functions = new WorkflowFunctions(this, 'Functions', {
      vpc,
      subnets,
      databaseClients,
      awsApiClients,
      retention: config.retention,
      bindings: this.bindings,
    });
    const architecture = config.tasks.architecture;
    const stallTimeout = Duration.minutes(config.tasks.stallTimeoutMinutes);
    this.pgTools = new PgToolsTask(this, 'PgTools', {
      vpc,
      subnets,
      securityGroup: databaseClients,
      architecture,
      image: 'tools',
      bindings: this.bindings,
      stallTimeout,
    });
    // Verification restores into a server of its own: it needs no database login.
    this.verifyTools = new PgToolsTask(this, 'VerifyTools', {
      vpc,
      subnets,
      securityGroup: databaseClients,
      cluster: this.pgTools.cluster,
      architecture,
      image: 'verify',
      bindings: this.bindings,
      stallTimeout,
    });
    this.pgTools.grantStore(this.store);
    this.pgTools.grantDatabaseLogins(logins);
    this.verifyTools.grantStore(this.store);

    this.monitoring = new Monitoring(this, 'Monitoring', {
      emailAddresses: config.notifications.emails,
      notifyOnSuccess: config.notifications.notifyOnSuccess,
    });
    // The AWS console (lib/runbooks.ts, lib/backups-widget.ts): the widget first on the dashboard.
    const consoleDeployment = consoleDeploymentOf(config, (db) => this.backupRequest(db));
    if (config.console.enabled) {
      new BackupsWidget(this, 'BackupsWidget', {
        functions: this.functions,
        store: this.store,
        deployment: consoleDeployment,
        dashboard: this.monitoring.dashboard,
      });
    }
    new CfnOutput(this, 'StoreUrl', {
      description: 'The store: the "store" of every execution input',
      value: this.store.storeUrl,
    });
    new CfnOutput(this, 'NotificationTopicArn', { value: this.monitoring.topic.topicArn });
    this.schedules = new Schedules(this, 'Schedules');
    this.monitoring.watchScheduleDeadLetters(this.schedules.deadLetterQueue);

    const workflowProps = { functions: this.functions, store: this.store, pgTools: this.pgTools };
    this.backup = new BackupWorkflow(this, 'Backup', workflowProps);
    this.addWorkflow('backup', this.backup);
    this.restore = new RestoreWorkflow(this, 'Restore', {
      ...workflowProps,
      backup: this.backup.stateMachine,
    });
    this.addWorkflow('restore', this.restore);
    this.verify = new VerifyWorkflow(this, 'Verify', { ...workflowProps, pgTools: this.verifyTools });
    this.addWorkflow('verify', this.verify);
    this.migrate = new MigrateWorkflow(this, 'Migrate', {
      ...workflowProps,
      cutoverServices: config.targets.flatMap((target) => target.cutoverEcsServices),
    });
    this.addWorkflow('migrate', this.migrate);
    this.serverBackup = new ServerBackupWorkflow(this, 'ServerBackup', {
      ...workflowProps,
      backup: this.backup.stateMachine,
    });
    this.addWorkflow('serverBackup', this.serverBackup);
    // The listing reaches the server entries' logins only.
    for (const server of config.servers)
      this.databaseLogins.get(server.id)?.grantLogin(this.serverBackup.list);

    if (config.console.enabled) {
      this.runbooks = new Runbooks(this, 'Runbooks', {
        functions: this.functions,
        stateMachines: {
          backup: this.backup.stateMachine,
          restore: this.restore.stateMachine,
          verify: this.verify.stateMachine,
          migrate: this.migrate.stateMachine,
        },
        store: this.store,
        deployment: consoleDeployment,
        approval: config.console,
      });
    }

    // After every function that connects to databases exists.
    this.functions.grantDatabaseLogins(logins);

    if (config.api.enabled) {
      const stateMachines = {
        backup: this.backup.stateMachine,
        restore: this.restore.stateMachine,
        verify: this.verify.stateMachine,
        migrate: this.migrate.stateMachine,
      };
      this.api = new PgferryApi(this, 'Api', {
        functions: this.functions,
        stateMachines,
        store: this.store,
        requestBodies: REQUEST_BODIES,
        endpoint: config.api.endpoint,
        vpcEndpointIds: config.api.vpcEndpointIds,
        allowedAccountIds: config.api.allowedAccountIds,
        throttle: config.api.throttle,
        createCloudWatchRole: config.api.createCloudWatchRole,
      });
      this.runEvents = new RunEvents(this, 'RunEvents', {
        functions: this.functions,
        stateMachines,
        store: this.store,
        environment: this.api.environment,
        cleanup: {
          backupCleanup: this.backup.cleanup,
          migrateSteps: this.migrate.steps,
          restoreCleanup: this.restore.cleanup,
          cluster: this.pgTools.cluster,
          cutoverServiceArns: this.migrate.cutoverServiceArns,
        },
      });
      // An announcement that failed after its retries is notified and alarmed like a workflow's failure.
      this.monitoring.watchWorkflow('run-events', this.runEvents.announcer);
    }

    // A fleet's schedules and alarms go to nested stacks, by server (lib/fleet.ts).
    const placements = placeDatabases(this, [...config.databases, ...config.servers]);
    for (const server of config.servers) this.scheduleServer(server, placements.get(server.id));
    for (const db of config.databases) {
      const placement = placements.get(db.id);
      const nestedScope = placement?.nested ? placement.scope : undefined;
      db.backupSchedules.forEach((schedule, i) => {
        this.schedules.add(
          {
            id: `${db.id}Backup${i + 1}`,
            description: `pgferry: backs up ${db.connection.database} (${schedule.cron}, ${schedule.timeZone})`,
            stateMachine: this.backup.stateMachine,
            cron: schedule.cron,
            timeZone: schedule.timeZone,
            flexibleWindow: Duration.minutes(schedule.flexibleWindowMinutes),
            input: this.backupRequest(db),
          },
          nestedScope,
        );
      });
      if (db.verifySchedule) {
        this.schedules.add(
          {
            id: `${db.id}Verify`,
            description: `pgferry: verifies the latest backup of ${db.connection.database}`,
            stateMachine: this.verify.stateMachine,
            cron: db.verifySchedule.cron,
            timeZone: db.verifySchedule.timeZone,
            flexibleWindow: Duration.minutes(db.verifySchedule.flexibleWindowMinutes),
            input: this.verifyRequest(db),
          },
          nestedScope,
        );
      }
      // Backups are filed under the id: the metric's dimension is the id.
      this.monitoring.watchBackups({
        id: db.id,
        database: db.id,
        maxAge: Duration.hours(db.alarmAfterHours),
        nestedScope,
      });
    }
  }

  /**
   * A server entry's schedules (each one server-backup execution) and its alarms, in the
   * server's nested stack when the fleet has them.
   */
  private scheduleServer(
    server: ServerConfig,
    placement: { scope: Construct; nested: boolean } | undefined,
  ): void {
    const nestedScope = placement?.nested ? placement.scope : undefined;
    server.backupSchedules.forEach((schedule, i) => {
      this.schedules.add(
        {
          id: `${server.id}Backup${i + 1}`,
          description: `pgferry: backs up every database of ${server.connection.host}:${server.connection.port} (${schedule.cron}, ${schedule.timeZone})`,
          stateMachine: this.serverBackup.stateMachine,
          cron: schedule.cron,
          timeZone: schedule.timeZone,
          flexibleWindow: Duration.minutes(schedule.flexibleWindowMinutes),
          input: this.serverBackupRequest(server),
        },
        nestedScope,
      );
    });
    this.monitoring.watchServer({
      id: server.id,
      maxAge: Duration.hours(server.alarmAfterHours),
      nestedScope,
    });
  }

  /** The execution input that backs up the server entry: ids and an ARN, never a password. */
  private serverBackupRequest(server: ServerConfig): ServerBackupRequestInput {
    return {
      name: server.id,
      source: { ...server.connection },
      store: this.store.storeUrl,
      selection: {
        include: server.databases === 'all' ? server.include : server.databases,
        exclude: server.exclude,
      },
      parallel: server.maxConcurrency,
      ...(server.compression ? { compression: server.compression } : {}),
      withRolePasswords: server.withRolePasswords,
      ...(server.lockWaitTimeoutSeconds === undefined
        ? {}
        : { lockWaitTimeoutMs: server.lockWaitTimeoutSeconds * 1000 }),
      origin: 'scheduled',
      staleAfterHours: server.alarmAfterHours,
    };
  }

  /** The zones the configuration names, else CDK's (a context lookup for a stack with an account). */
  override get availabilityZones(): string[] {
    return this.configuredZones ?? super.availabilityZones;
  }

  /**
   * Wires a workflow's state machine into monitoring, names it in the stack's outputs and
   * acknowledges the wildcards that Step Functions' own integrations put in its role.
   */
  addWorkflow(name: string, workflow: Workflow): void {
    const { stateMachine } = workflow;
    this.monitoring.watchWorkflow(name, stateMachine);
    new CfnOutput(this, `${name[0].toUpperCase()}${name.slice(1)}StateMachineArn`, {
      description: `The ${name} state machine: start it from the console with an input from the README`,
      value: stateMachine.stateMachineArn,
    });
    acknowledgeWildcards(stateMachine.role, {
      'Resource::*':
        'X-Ray, CloudWatch Logs delivery and ecs:DescribeTasks/StopTask (task ARNs exist only at run time) accept no narrower resource',
      ...Object.fromEntries(
        workflow.handlers.map((fn) => [
          `${wildcardResource(this, fn.functionArn)}:*`,
          "LambdaInvoke's grant of the function's versions and aliases (pgferry's own function only)",
        ]),
      ),
    });
  }

  /**
   * The execution input that backs up `db`: a connection with a secret's ARN, never a password;
   * filed under the database's id, with its lock wait timeout and scope.
   */
  private backupRequest(db: DatabaseConfig): BackupRequestInput {
    return {
      name: db.id,
      source: { ...db.connection },
      store: this.store.storeUrl,
      ...(db.compression ? { compression: db.compression } : {}),
      withRolePasswords: db.withRolePasswords,
      ...(db.lockWaitTimeoutSeconds === undefined
        ? {}
        : { lockWaitTimeoutMs: db.lockWaitTimeoutSeconds * 1000 }),
      ...(isScoped(db.scope) ? { scope: db.scope } : {}),
      // Recorded in the manifest: `list` and retention tell schedules' backups from the others.
      origin: 'scheduled',
    };
  }

  /** The execution input that verifies the latest backup of `db` (filed under its id). */
  private verifyRequest(db: DatabaseConfig): VerifyRequest {
    return { store: this.store.storeUrl, backup: 'latest', name: db.id };
  }
}
