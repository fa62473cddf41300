import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { BackupWorkflow } from './backup-workflow';
import { PgToolsTask } from './pg-tools-task';
import { RestoreWorkflow } from './restore-workflow';
import { WorkflowFunctions } from './workflow-functions';

export interface PgferryStackProps extends StackProps {
  /**
   * An existing VPC that reaches the databases.
   * @default a new VPC with two AZs and one NAT gateway
   */
  readonly vpc?: ec2.IVpc;
}

/** pgferry on AWS: the backup store, the pg-tools task, the handlers and the workflows. */
export class PgferryStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly backup: BackupWorkflow;
  readonly restore: RestoreWorkflow;

  constructor(scope: Construct, id: string, props: PgferryStackProps = {}) {
    super(scope, id, props);
    const vpc = props.vpc ?? new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });

    this.bucket = new s3.Bucket(this, 'Backups', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(2) },
      ],
    });

    const functions = new WorkflowFunctions(this, 'Functions', { vpc });
    const pgTools = new PgToolsTask(this, 'PgTools', { vpc });
    functions.grantStore(this.bucket);
    pgTools.grantStore(this.bucket);

    this.backup = new BackupWorkflow(this, 'Backup', { functions, pgTools });
    this.restore = new RestoreWorkflow(this, 'Restore', {
      preflightFunction: functions.restorePreflight,
      recordFunction: functions.restoreRecord,
      pgTools,
    });
  }
}
