/**
 * The AWS SDK clients `--aws` uses, behind a seam: the CLI gets real clients (the standard
 * credential and region chain), tests get recorded responses (`test/fixtures/aws/`).
 */
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import type { SFNClient } from '@aws-sdk/client-sfn';

export interface AwsClients {
  cloudFormation: Pick<CloudFormationClient, 'send'>;
  sfn: Pick<SFNClient, 'send'>;
}

/** How the CLI reaches AWS: its clients (created on first use) and how often it polls. */
export interface AwsAccess {
  clients(): Promise<AwsClients>;
  /** Milliseconds between two polls of a running execution. */
  pollIntervalMs: number;
}

/** Real clients, configured like the AWS CLI (AWS_REGION, AWS_PROFILE, ~/.aws, SSO, …). */
export function defaultAwsAccess(): AwsAccess {
  let clients: Promise<AwsClients> | undefined;
  return {
    clients() {
      // Loaded on first use, so that commands run locally never load these SDK clients.
      clients ??= Promise.all([import('@aws-sdk/client-cloudformation'), import('@aws-sdk/client-sfn')]).then(
        ([cfn, sfn]) => ({ cloudFormation: new cfn.CloudFormationClient({}), sfn: new sfn.SFNClient({}) }),
      );
      return clients;
    },
    pollIntervalMs: 2000,
  };
}
