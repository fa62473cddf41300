/**
 * The AWS SDK clients `--aws` uses, behind a seam: the CLI gets real clients (the standard
 * credential and region chain), tests get recorded responses (`test/fixtures/aws/`).
 */
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { PgferryError } from '../../core/errors';

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
        async ([cfn, sfn]) => {
          const cloudFormation = new cfn.CloudFormationClient({});
          await requireRegion(() => cloudFormation.config.region());
          return { cloudFormation, sfn: new sfn.SFNClient({}) };
        },
      );
      return clients;
    },
    pollIntervalMs: 2000,
  };
}

/**
 * Fails, saying how to set one, when the SDK finds no region (its own error is only "Region is
 * missing"). The SDK reads AWS_REGION, then the profile's `region` in ~/.aws/config (AWS_PROFILE
 * names the profile).
 */
export async function requireRegion(region: () => Promise<string>): Promise<void> {
  try {
    await region();
  } catch (err) {
    if (!/region is missing/i.test((err as Error).message)) throw err;
    throw new PgferryError(
      'InvalidInput',
      '--aws needs an AWS region: set AWS_REGION (e.g. AWS_REGION=eu-west-1), or a region in your AWS profile ' +
        '(aws configure set region eu-west-1; AWS_PROFILE picks the profile)',
    );
  }
}
