/**
 * A stand-in for AWS Secrets Manager's GetSecretValue, on a local port, for the tests of what the
 * runtime does with configured secrets (the AWS control plane is the one thing mocked): the SDK
 * reaches it through `AWS_ENDPOINT_URL_SECRETS_MANAGER`. It records every secret asked for, so a
 * test can prove a refusal came before any secret was read.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeSecretsManager {
  /** The environment that points the AWS SDK (and so pgferry) at it. */
  env(): Record<string, string>;
  /** The secret ids asked for so far. */
  readonly requested: string[];
  stop(): Promise<void>;
}

/** Serves `secrets` (ARN → secret string) until stopped. */
export async function startFakeSecretsManager(secrets: Record<string, string>): Promise<FakeSecretsManager> {
  const requested: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const { SecretId } = JSON.parse(body || '{}') as { SecretId?: string };
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      if (target !== 'secretsmanager.GetSecretValue' || !SecretId) {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: 'InvalidRequestException', message: `not served: ${target}` }));
        return;
      }
      requested.push(SecretId);
      const value = secrets[SecretId];
      if (value === undefined) {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'no such secret' }));
        return;
      }
      res.end(JSON.stringify({ ARN: SecretId, Name: SecretId.split(':').pop(), SecretString: value }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    requested,
    env: () => ({
      AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${port}`,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    }),
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
