/**
 * The API's Lambda function as `cdk deploy` bundles it (lambdas/api/handler.ts), invoked with
 * API Gateway REST proxy events in a process of its own, its Step Functions client pointed at
 * recorded executions (test/support/recorded-step-functions.ts, over HTTP) and its store a local
 * folder: a POST starts an execution (202), a GET shows a run, a bad body is a 400 that starts
 * nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LocalStore } from '../../../../core/store';
import { type BundledStack, invokeBundle, synthesizeBundled } from '../../../support/lambda-bundles';
import { type RecordedStepFunctions, recordedStepFunctions } from '../../../support/recorded-step-functions';
import { minimalConfig } from '../../../unit/lib/fixtures';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf';
const CALLER = 'arn:aws:sts::123456789012:assumed-role/deploy-pipeline/ci';

let bundled: BundledStack;
let sfn: RecordedStepFunctions;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  bundled = synthesizeBundled(minimalConfig());
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-api-lambda-'));
  sfn = recordedStepFunctions({ storeUrl: new LocalStore(dir).url });
  env = {
    AWS_ENDPOINT_URL_SFN: await sfn.listen(),
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    // As lib/api.ts sets them (the state machines' ARNs those of the recording).
    PGFERRY_STORE: new LocalStore(dir).url,
    PGFERRY_STATE_MACHINES: JSON.stringify(sfn.stateMachineArns),
    PGFERRY_API_BASE_PATH: '/api',
  };
}, 300_000);
afterAll(async () => {
  await sfn?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An API Gateway REST proxy event (IAM-authorized), as API Gateway sends it for `method path`. */
function proxyEvent(
  method: string,
  resource: string,
  pathname: string,
  {
    body,
    headers = {},
    pathParameters,
  }: { body?: unknown; headers?: Record<string, string>; pathParameters?: Record<string, string> } = {},
) {
  const allHeaders = {
    Host: 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com',
    'User-Agent': 'awscurl/0.36',
    'X-Amz-Date': '20261202T060000Z',
    Authorization:
      'AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261202/eu-west-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123',
    ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    ...headers,
  };
  return {
    resource,
    path: pathname,
    httpMethod: method,
    headers: allHeaders,
    multiValueHeaders: Object.fromEntries(Object.entries(allHeaders).map(([k, v]) => [k, [v]])),
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: pathParameters ?? null,
    stageVariables: null,
    requestContext: {
      resourceId: 'abc123',
      resourcePath: resource,
      httpMethod: method,
      extendedRequestId: 'Xyz0AbCdIAMEXAMPLE=',
      requestTime: '02/Dec/2026:06:00:00 +0000',
      path: `/api${pathname}`,
      accountId: '123456789012',
      protocol: 'HTTP/1.1',
      stage: 'api',
      domainPrefix: 'a1b2c3d4e5',
      requestTimeEpoch: 1795932000000,
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      identity: {
        caller: 'AROAEXAMPLE:ci',
        userArn: CALLER,
        accountId: '123456789012',
        accessKey: 'ASIAEXAMPLE',
        sourceIp: '10.10.3.7',
      },
      domainName: 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com',
      apiId: 'a1b2c3d4e5',
    },
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
  };
}

interface ProxyResult {
  statusCode: number;
  headers?: Record<string, string>;
  multiValueHeaders?: Record<string, string[]>;
  body: string;
}

/** A response header, wherever the adapter put it (REST proxy results may carry either form). */
function header(result: ProxyResult, name: string): string | undefined {
  return result.headers?.[name] ?? result.multiValueHeaders?.[name]?.join(', ');
}

async function invoke(event: unknown): Promise<ProxyResult & { json: Record<string, unknown> }> {
  const invocation = await invokeBundle(bundled.bundleOf('Api'), event, env);
  if (!invocation.ok) throw new Error(`${invocation.errorType}: ${invocation.errorMessage}`);
  const result = invocation.result as ProxyResult;
  return { ...result, json: JSON.parse(result.body) };
}

test('POST /v1/migrations starts the migrate state machine with the body and the store: 202 and the run', async () => {
  const login = { port: 5432, user: 'pgferry_backup', sslmode: 'verify-full', passwordSecretArn: SECRET };
  const body = {
    source: { host: 'shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com', database: 'shop', ...login },
    target: { host: 'shop-pg17.cluster-def456uvw.eu-west-1.rds.amazonaws.com', database: 'shop', ...login },
  };
  const response = await invoke(
    proxyEvent('POST', '/v1/migrations', '/v1/migrations', {
      body,
      headers: { 'Idempotency-Key': 'deploy-4712' },
    }),
  );
  expect(response.statusCode).toBe(202);
  expect(header(response, 'location')).toBe('/api/v1/runs/migrate-deploy-4712');
  expect(response.json).toEqual({
    id: 'migrate-deploy-4712',
    kind: 'migrate',
    status: 'running',
    links: { self: '/api/v1/runs/migrate-deploy-4712' },
  });
  const start = sfn.sent.find((s) => s.operation === 'StartExecution');
  expect(start?.input).toMatchObject({ stateMachineArn: sfn.stateMachineArns.migrate, name: 'deploy-4712' });
  // The validated body (defaults applied) and the deployment's store; the secret's ARN, no password.
  const input = JSON.parse(String(start?.input.input));
  expect(input).toMatchObject({ ...body, store: env.PGFERRY_STORE, freezeSource: false });
  // Left out: the preflight runs the schema test when it protects something.
  expect(input).not.toHaveProperty('schemaTest');
});

test('GET /v1/runs/{id} of a failed restore: its state, error and cause', async () => {
  const response = await invoke(
    proxyEvent('GET', '/v1/runs/{id}', '/v1/runs/restore-restore-shop-drill-1', {
      pathParameters: { id: 'restore-restore-shop-drill-1' },
    }),
  );
  expect(response.statusCode).toBe(200);
  expect(response.json).toMatchObject({
    id: 'restore-restore-shop-drill-1',
    kind: 'restore',
    status: 'failed',
    state: 'RestoreFailed',
    error: { error: 'Pgferry.TargetExists' },
  });
});

test('a body the schema refuses: 400 naming every problem, and nothing started', async () => {
  const started = sfn.sent.filter((s) => s.operation === 'StartExecution').length;
  const response = await invoke(
    proxyEvent('POST', '/v1/backups', '/v1/backups', { body: { source: { host: '' }, compression: 'fast' } }),
  );
  expect(response.statusCode).toBe(400);
  expect(response.json.error).toBe('InvalidRequest');
  const paths = (response.json.issues as { path: string }[]).map((i) => i.path);
  expect(paths).toEqual(expect.arrayContaining(['source.host', 'compression']));
  expect(sfn.sent.filter((s) => s.operation === 'StartExecution')).toHaveLength(started);
});
