import type * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { ServerLoginConfig } from './config';

/** How pgferry's roles may log in to one configured database: read its secret, or `rds-db:connect`. */
export interface DatabaseLogin {
  grantLogin(grantee: iam.IGrantable): void;
}

/** The login of a database or target: its password secret, or RDS IAM authentication for its user. */
export function databaseLogin(scope: Construct, db: ServerLoginConfig): DatabaseLogin {
  const { connection } = db;
  if (connection.iamAuth && db.rdsResourceId) {
    const resourceId = db.rdsResourceId;
    if (resourceId.startsWith('cluster-')) {
      const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(scope, `${db.id}Cluster`, {
        clusterIdentifier: db.id.toLowerCase(),
        clusterResourceIdentifier: resourceId,
      });
      return { grantLogin: (grantee) => cluster.grantConnect(grantee, connection.user) };
    }
    const instance = rds.DatabaseInstance.fromDatabaseInstanceAttributes(scope, `${db.id}Instance`, {
      instanceIdentifier: db.id.toLowerCase(),
      instanceEndpointAddress: connection.host,
      port: connection.port,
      securityGroups: [],
      instanceResourceId: resourceId,
    });
    return { grantLogin: (grantee) => instance.grantConnect(grantee, connection.user) };
  }
  const secret = secretsmanager.Secret.fromSecretAttributes(scope, `${db.id}PasswordSecret`, {
    secretCompleteArn: connection.passwordSecretArn,
    encryptionKey: db.passwordSecretKmsKeyArn
      ? kms.Key.fromKeyArn(scope, `${db.id}PasswordSecretKey`, db.passwordSecretKmsKeyArn)
      : undefined,
  });
  return { grantLogin: (grantee) => secret.grantRead(grantee) };
}
