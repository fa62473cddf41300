/**
 * A stopped run's cleanup on its run view (lambdas/api/run-cleanup.ts), with the functions as
 * `cdk deploy` bundles them, each invoked in a process of its own as Lambda would, on the harness's
 * S3 server (s3rver): the announcer's Describe (lambdas/api/events/handler.ts), given its state
 * after a cancelled restore's cleanup, writes the record under `<store>/.runs/`; the API's function
 * (lambdas/api/handler.ts) then shows it in `GET /v1/runs/{id}`. S3 refusing the write (through
 * test/support/s3-fault-proxy.ts) keeps nothing back: the event is returned, with why the record
 * was not written beside it (on which the announcer fails, test/unit/lib/run-events.test.ts).
 */
import * as path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../../../core/store/s3-store';
import { testEnv, uniqueName } from '../../../support/env';
import { type BundledStack, invokeBundle, synthesizeBundled } from '../../../support/lambda-bundles';
import { type RecordedStepFunctions, recordedStepFunctions } from '../../../support/recorded-step-functions';
import { type S3FaultProxy, startS3FaultProxy } from '../../../support/s3-fault-proxy';
import { minimalConfig } from '../../../unit/lib/fixtures';

const FIXTURE = path.join(__dirname, '../../../fixtures/aws/stopped-executions.json');
const s3 = testEnv().s3;

let bundled: BundledStack;
let sfn: RecordedStepFunctions;
let proxy: S3FaultProxy;
let store: S3Store;
let env: Record<string, string>;

beforeAll(async () => {
  bundled = synthesizeBundled(minimalConfig());
  proxy = await startS3FaultProxy(s3.endpoint);
  store = new S3Store(s3.bucket, uniqueName('run_cleanup'), new S3Client(s3.clientConfig()));
  sfn = recordedStepFunctions({ storeUrl: store.url, fixtureFile: FIXTURE });
  env = {
    ...s3.env(),
    // Through the proxy, which forwards everything unless a test injects a fault.
    AWS_ENDPOINT_URL_S3: proxy.endpoint,
    AWS_MAX_ATTEMPTS: '1',
    AWS_ENDPOINT_URL_SFN: await sfn.listen(),
    // As lib/api.ts sets them for the API's functions (the state machines those of the recording).
    PGFERRY_STORE: store.url,
    PGFERRY_STATE_MACHINES: JSON.stringify(sfn.stateMachineArns),
    PGFERRY_API_BASE_PATH: '/api',
  };
}, 300_000);
afterAll(async () => {
  await sfn?.close();
  await proxy?.close();
});
afterEach(() => proxy.heal());

const dropped =
  'the database shop_drill_restoring, which the restore loads before renaming it shop_drill, was dropped';
const RUN = 'restore-drill-cancel-cleanup';

/** The announcer's state when it describes the cancelled restore, after RestoreCleanup. */
const describeState = (left: string[] = []) => ({
  stateMachineArn: sfn.stateMachineArns.restore,
  name: 'drill-cancel-cleanup',
  status: 'ABORTED',
  cleanup: { kind: 'restore', waitSeconds: 0 },
  restoreCleanup: { notes: [dropped], left },
});

async function invoke(id: string, event: unknown): Promise<Record<string, unknown>> {
  const invocation = await invokeBundle(bundled.bundleOf(id), event, env);
  if (!invocation.ok) throw new Error(`${invocation.errorType}: ${invocation.errorMessage}`);
  return invocation.result as Record<string, unknown>;
}

/** `GET /v1/runs/{id}` through the API's function, as API Gateway's REST proxy sends it. */
async function getRun(id: string): Promise<Record<string, unknown>> {
  const result = (await invoke('Api', {
    resource: '/v1/runs/{id}',
    path: `/v1/runs/${id}`,
    httpMethod: 'GET',
    headers: { Host: 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com' },
    multiValueHeaders: { Host: ['a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com'] },
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: { id },
    stageVariables: null,
    requestContext: {
      resourcePath: '/v1/runs/{id}',
      httpMethod: 'GET',
      path: `/api/v1/runs/${id}`,
      accountId: '123456789012',
      stage: 'api',
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      identity: { userArn: 'arn:aws:sts::123456789012:assumed-role/platform/engineer' },
      apiId: 'a1b2c3d4e5',
    },
    body: null,
    isBase64Encoded: false,
  })) as { statusCode: number; body: string };
  expect(result.statusCode).toBe(200);
  return JSON.parse(result.body);
}

test('a cancelled restore: no cleanup on its run until the announcer has cleaned up; then what it did and left, as its event says', async () => {
  expect(await getRun(RUN)).not.toHaveProperty('cleanup');

  const left = ['the database x is left in place (…): remove it with DROP DATABASE x WITH (FORCE);'];
  const described = await invoke('RunEventsDescribe', describeState(left));
  expect(described).toMatchObject({
    detailType: 'Restore Cancelled',
    detail: { id: RUN, cleanup: { notes: [dropped], left } },
  });
  expect(described).not.toHaveProperty('unrecorded');
  // Written once, by Describe: a PutObject under .runs/ and no other write.
  const writes = proxy.log.filter((r) => r.method === 'PUT' || r.method === 'POST' || r.method === 'DELETE');
  expect(writes.map((r) => [r.operation, r.key])).toEqual([
    ['PutObject', `${store.url.split('/').slice(3).join('/')}/.runs/${RUN}/cleanup.json`],
  ]);
  expect(await store.getJson(`.runs/${RUN}/cleanup.json`)).toEqual({
    id: RUN,
    recordedAt: expect.any(String),
    cleanup: { notes: [dropped], left },
  });

  const run = await getRun(RUN);
  expect(run).toMatchObject({
    id: RUN,
    status: 'cancelled',
    error: { error: 'pgferry.Cancelled' },
    cleanup: { notes: [dropped], left },
  });
}, 120_000);

test('S3 refusing the write: the event is returned all the same, saying the cleanup was not recorded', async () => {
  proxy.inject({
    match: (r) => r.operation === 'PutObject' && r.key.includes('/.runs/'),
    action: { status: 403, code: 'AccessDenied' },
  });
  const described = await invoke('RunEventsDescribe', describeState());
  expect(described).toMatchObject({
    detailType: 'Restore Cancelled',
    detail: { id: RUN, cleanup: { notes: [dropped], left: [] } },
    unrecorded: {
      Error: 'pgferry.CleanupNotRecorded',
      Cause: expect.stringMatching(
        new RegExp(
          `^the cleanup of run ${RUN} was announced but not recorded for its run view: .*AccessDenied`,
        ),
      ),
    },
  });
}, 120_000);
