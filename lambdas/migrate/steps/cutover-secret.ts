/**
 * The cutover on AWS: points the application's Secrets Manager secret at the target. Done here,
 * not with Step Functions' own Secrets Manager integration, so that the secret's value (with its
 * password) never passes through the execution's state or history: only its ARN and the new
 * version's id come back.
 */
import type { MigratePlan } from '../../../core/contracts';
import { PgferryError } from '../../../core/errors';

/** The two Secrets Manager calls the cutover makes (the SDK client, or a fake in tests). */
export interface SecretsApi {
  getSecretString(secretArn: string): Promise<string | undefined>;
  /** Writes a new current version; resolves with its id. */
  putSecretString(secretArn: string, value: string): Promise<string | undefined>;
}

export interface CutoverSecretResult {
  secretArn: string;
  versionId?: string;
  /** The fields replaced (their names only). */
  fields: string[];
}

/**
 * The secret's JSON with `fields` replaced and every other field (user, password, engine, …)
 * kept. A secret that is not a JSON object is refused: it has no connection fields to point.
 */
export function pointSecretAt(secretString: string | undefined, fields: Record<string, unknown>): string {
  let current: unknown;
  try {
    current = JSON.parse(secretString ?? '');
  } catch {
    current = undefined;
  }
  if (current === null || typeof current !== 'object' || Array.isArray(current)) {
    throw new PgferryError(
      'InvalidInput',
      'the cutover secret is not a JSON object (such as RDS\'s {"host","port","dbname","username","password"}): it was left unchanged',
    );
  }
  return JSON.stringify({ ...current, ...fields });
}

/** Reads the plan's cutover secret, replaces its `host`, `port` and `dbname`, writes it back. */
export async function updateCutoverSecret(plan: MigratePlan, api: SecretsApi): Promise<CutoverSecretResult> {
  const secretArn = plan.request.cutover?.secretArn;
  const fields = plan.cutoverSecretFields;
  if (!secretArn || !fields) throw new PgferryError('InvalidInput', 'this migration has no cutover secret');
  const value = pointSecretAt(await api.getSecretString(secretArn), fields);
  const versionId = await api.putSecretString(secretArn, value);
  return { secretArn, versionId, fields: Object.keys(fields) };
}

/** The SDK's Secrets Manager client behind `SecretsApi` (loaded only when a cutover needs it). */
export async function secretsManagerApi(): Promise<SecretsApi> {
  const { SecretsManagerClient, GetSecretValueCommand, PutSecretValueCommand } = await import(
    '@aws-sdk/client-secrets-manager'
  );
  const client = new SecretsManagerClient({});
  return {
    async getSecretString(secretArn) {
      return (await client.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString;
    },
    async putSecretString(secretArn, value) {
      return (await client.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: value })))
        .VersionId;
    },
  };
}
