/**
 * The HTTP API on AWS (lib/api.ts), proven on the synthesized template: IAM on every method,
 * request bodies validated by models generated from the application's schemas, throttling,
 * access logs without bodies or headers, per-route grants, the resource policy of a private API,
 * the function's least privilege, and what it adds to the stack's 500 resources.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { z } from 'zod';
import { createApi, openApiDocument, REQUEST_BODIES } from '../../../api/app';
import type { RunHost } from '../../../api/runs';
import { LocalStore } from '../../../core/store';
import { ACCESS_LOG_FIELDS, API_GRANTS, API_ROUTES, type ApiGrant, modelSchema } from '../../../lib/api';
import { parseConfig } from '../../../lib/config';
import { ACCOUNT, allowedActionsOf, minimalConfig, policyStatementsOf, REGION, templateOf } from './fixtures';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

const template = templateOf();
const resources = template.toJSON().Resources as Resources;

function ofType(t: Template, type: string): [string, Resources[string]][] {
  return Object.entries(t.toJSON().Resources as Resources).filter(([, r]) => r.Type === type);
}

/** Each API Gateway method of the template as `METHOD /path` (its resource's path rebuilt from the parents). */
function methodsOf(t: Template): Map<string, Resources[string]> {
  const all = t.toJSON().Resources as Resources;
  const pathOf = (ref: unknown): string => {
    const r = ref as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
    if (r['Fn::GetAtt']) return ''; // the API's root resource
    const resource = all[r.Ref ?? ''];
    return `${pathOf(resource.Properties.ParentId)}/${resource.Properties.PathPart}`;
  };
  return new Map(
    ofType(t, 'AWS::ApiGateway::Method').map(([, m]) => [
      `${m.Properties.HttpMethod} ${pathOf(m.Properties.ResourceId) || '/'}`,
      m,
    ]),
  );
}

/** A template value with its intrinsic functions flattened: `Ref` → `<Id>`, joins joined. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (v.Ref) return `<${v.Ref}>`;
  if (v['Fn::Join']) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(flatten).join(sep);
  }
  if (v['Fn::GetAtt']) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  return JSON.stringify(value);
}

const [[restApiId]] = ofType(template, 'AWS::ApiGateway::RestApi');
const [[stageId]] = ofType(template, 'AWS::ApiGateway::Stage');

test("API_ROUTES are the application's routes: those of its OpenAPI document, and the document itself", () => {
  const app = createApi({ runs: {} as RunHost, store: new LocalStore('/nonexistent') });
  const { paths } = openApiDocument(app) as { paths: Record<string, Record<string, unknown>> };
  const documented = Object.entries(paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
  );
  expect(API_ROUTES.map((r) => `${r.method} ${r.path}`).sort()).toEqual(
    [...documented, 'GET /openapi.json'].sort(),
  );
});

test('every route of the application is a method, and every method is IAM-authorized (SigV4)', () => {
  const methods = methodsOf(template);
  expect([...methods.keys()].sort()).toEqual(API_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  for (const [route, method] of methods) {
    expect([route, method.Properties.AuthorizationType]).toEqual([route, 'AWS_IAM']);
  }
});

test("each POST validates its body against the model rendered from the application's body schema", () => {
  const methods = methodsOf(template);
  const [[validatorId, validator]] = ofType(template, 'AWS::ApiGateway::RequestValidator');
  expect(validator.Properties).toMatchObject({ ValidateRequestBody: true });
  const models = Object.fromEntries(ofType(template, 'AWS::ApiGateway::Model'));
  const schemaOf = (route: string) => {
    const method = methods.get(route);
    expect(method?.Properties.RequestValidatorId).toEqual({ Ref: validatorId });
    const requestModels = method?.Properties.RequestModels as Record<string, { Ref: string }>;
    const { Ref } = requestModels['application/json'];
    return models[Ref].Properties.Schema as Record<string, unknown>;
  };
  const rendered = (schema: z.ZodType) => z.toJSONSchema(schema, { target: 'draft-4', io: 'input' });
  const backup = schemaOf('POST /v1/backups');
  expect(backup).toEqual(rendered(REQUEST_BODIES.backup));
  // Generated, not written: what zod renders as JSON Schema draft 4, with the store left out.
  expect(backup).toMatchObject({
    $schema: 'http://json-schema.org/draft-04/schema#',
    type: 'object',
    required: ['source'],
    additionalProperties: false,
  });
  expect(Object.keys(backup.properties as object)).not.toContain('store');
  expect(schemaOf('POST /v1/migrations')).toEqual(rendered(REQUEST_BODIES.migrate));
  expect(schemaOf('POST /v1/restores')).toEqual(rendered(REQUEST_BODIES.restore));
  expect(schemaOf('POST /v1/verifications')).toEqual(rendered(REQUEST_BODIES.verify));
  // A refused body is answered like the application's 400, as JSON: the one quoted variable
  // (a gateway response template substitutes without escaping).
  template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
    ResponseType: 'BAD_REQUEST_BODY',
    StatusCode: '400',
    ResponseTemplates: {
      'application/json': '{"error":"InvalidRequest","message":$context.error.messageString}',
    },
  });
});

test('modelSchema renders what a request may omit (defaults) as optional', () => {
  const schema = modelSchema(z.object({ a: z.string(), b: z.boolean().default(false) }).strict());
  expect(schema).toMatchObject({ required: ['a'], additionalProperties: false });
});

test('the stage is throttled, logs errors without data, and writes access logs without bodies or headers', () => {
  const [, stage] = ofType(template, 'AWS::ApiGateway::Stage')[0];
  expect(stage.Properties.MethodSettings).toEqual([
    expect.objectContaining({
      HttpMethod: '*',
      ResourcePath: '/*',
      ThrottlingRateLimit: 10,
      ThrottlingBurstLimit: 20,
      LoggingLevel: 'ERROR',
      DataTraceEnabled: false,
    }),
  ]);
  const { DestinationArn, Format } = stage.Properties.AccessLogSetting as {
    DestinationArn: unknown;
    Format: string;
  };
  expect(flatten(DestinationArn)).toMatch(/^<ApiAccessLogs[0-9A-F]{8}\.Arn>$/);
  expect(JSON.parse(Format)).toEqual(ACCESS_LOG_FIELDS);
  // Nothing of a request's or response's content: no body, header, query string or $input.
  expect(Format).not.toMatch(/requestBody|responseBody|\$input|header|querystring|authorization/i);
  // API Gateway's list of a refused body's problems quotes the body's values.
  expect(Format).not.toContain('validationErrorString');

  const throttled = templateOf(minimalConfig({ api: { throttle: { rateLimit: 2, burstLimit: 4 } } }));
  expect(ofType(throttled, 'AWS::ApiGateway::Stage')[0][1].Properties.MethodSettings).toEqual([
    expect.objectContaining({ ThrottlingRateLimit: 2, ThrottlingBurstLimit: 4 }),
  ]);
});

describe('per-route grants', () => {
  const policies = Object.fromEntries(
    ofType(template, 'AWS::IAM::ManagedPolicy')
      .filter(([id]) => id.startsWith('Api'))
      .map(([id, p]) => [id.replace(/Policy[0-9A-F]{8}$/, '').replace(/^Api/, ''), p]),
  ) as Record<string, Resources[string]>;
  const grantIds: Record<ApiGrant, string> = {
    readCatalog: 'ReadCatalog',
    backUp: 'BackUp',
    restore: 'Restore',
    migrate: 'Migrate',
  };

  /** The grant's ARNs as the template builds them, as `METHOD /path` patterns on this API's stage. */
  function allowed(grant: ApiGrant): string[] {
    const document = policies[grantIds[grant]].Properties.PolicyDocument as {
      Statement: { Effect: string; Action: string; Resource: unknown[] }[];
    };
    expect(document.Statement).toHaveLength(1);
    const [statement] = document.Statement;
    expect([statement.Effect, statement.Action]).toEqual(['Allow', 'execute-api:Invoke']);
    const prefix = `arn:aws:execute-api:${REGION}:${ACCOUNT}:<${restApiId}>/<${stageId}>/`;
    return statement.Resource.map((r) => {
      const arn = flatten(r);
      expect(arn.startsWith(prefix)).toBe(true);
      const [method, ...path] = arn.slice(prefix.length).split('/');
      return `${method} /${path.join('/')}`;
    });
  }

  /** The grants whose ARNs match the request, as execute-api matches them (`*`: any characters). */
  function grantsFor(request: string): ApiGrant[] {
    return (Object.keys(grantIds) as ApiGrant[]).filter((grant) =>
      allowed(grant).some((pattern) =>
        new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(request),
      ),
    );
  }

  test('a managed policy per grant, each allowing exactly what API_GRANTS says', () => {
    for (const grant of Object.keys(grantIds) as ApiGrant[]) {
      expect(allowed(grant).sort()).toEqual(
        API_GRANTS[grant].allows.map((r) => `${r.method} ${r.path}`).sort(),
      );
    }
  });

  test.each([
    ['POST /v1/backups', ['backUp']],
    ['POST /v1/verifications', ['backUp']],
    ['POST /v1/restores', ['restore']],
    ['POST /v1/migrations', ['migrate']],
    ['GET /v1/runs/migrate-deploy-42', ['readCatalog', 'migrate']],
    ['DELETE /v1/runs/migrate-deploy-42', ['migrate']],
    ['DELETE /v1/runs/backup-20261202T051500Z-3fa9c1', ['backUp']],
    ['DELETE /v1/runs/restore-drill-1', ['restore']],
    ['GET /v1/runs/verify-drill-1', ['readCatalog', 'backUp']],
    ['GET /v1/runs', ['readCatalog']],
    ['GET /v1/backups', ['readCatalog']],
    ['GET /v1/backups/shop/20261202T051500Z-3fa9c1', ['readCatalog']],
    ['GET /v1/status', ['readCatalog']],
    ['GET /openapi.json', ['readCatalog']],
  ])('%s is allowed by %j only', (request, grants) => {
    expect(grantsFor(request)).toEqual(grants);
  });

  test("every grant's ARN names a method of the API (a path parameter where it ends in *)", () => {
    // Each method's requests, its path parameters given sample values (a run id of each kind).
    const samples: Record<string, string[]> = {
      database: ['shop'],
      id: ['20261202T051500Z-3fa9c1', 'backup-x', 'restore-x', 'verify-x', 'migrate-x'],
    };
    const requests = [...methodsOf(template).keys()].flatMap((method) =>
      (method.match(/\{[^}]+\}/g) ?? []).reduce(
        (expanded, param) =>
          expanded.flatMap((m) => samples[param.slice(1, -1)].map((value) => m.replace(param, value))),
        [method],
      ),
    );
    for (const grant of Object.keys(grantIds) as ApiGrant[]) {
      for (const pattern of allowed(grant)) {
        const regex = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
        expect([pattern, requests.some((r) => regex.test(r))]).toEqual([pattern, true]);
      }
    }
  });
});

describe('reachability', () => {
  test('by default: a regional endpoint and no resource policy (IAM policies of this account decide)', () => {
    const [, api] = ofType(template, 'AWS::ApiGateway::RestApi')[0];
    expect(api.Properties.EndpointConfiguration).toEqual({ Types: ['REGIONAL'] });
    expect(api.Properties.Policy).toBeUndefined();
  });

  test('private: reachable through the configured VPC endpoints only; other accounts when named', () => {
    const t = templateOf(
      minimalConfig({
        api: {
          endpoint: 'private',
          vpcEndpointIds: ['vpce-0123456789abcdef0'],
          allowedAccountIds: ['210987654321'],
        },
      }),
    );
    const [, api] = ofType(t, 'AWS::ApiGateway::RestApi')[0];
    expect(api.Properties.EndpointConfiguration).toEqual({
      Types: ['PRIVATE'],
      VpcEndpointIds: ['vpce-0123456789abcdef0'],
    });
    const { Statement } = api.Properties.Policy as { Statement: Record<string, unknown>[] };
    expect(Statement).toEqual([
      expect.objectContaining({
        Sid: 'AllowThisAndConfiguredAccounts',
        Effect: 'Allow',
        Action: 'execute-api:Invoke',
        Principal: {
          AWS: [`arn:aws:iam::${ACCOUNT}:root`, 'arn:aws:iam::210987654321:root'],
        },
      }),
      expect.objectContaining({
        Sid: 'DenyOutsideConfiguredVpcEndpoints',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Condition: { StringNotEquals: { 'aws:SourceVpce': ['vpce-0123456789abcdef0'] } },
      }),
    ]);
  });

  test('the configuration refuses a private API without endpoints, and endpoints without a private API', () => {
    expect(() => parseConfig(minimalConfig({ api: { endpoint: 'private' } }))).toThrow(
      /vpcEndpointIds.*a private API needs the execute-api VPC endpoints/s,
    );
    expect(() => parseConfig(minimalConfig({ api: { vpcEndpointIds: ['vpce-0123456789abcdef0'] } }))).toThrow(
      /set endpoint to "private"/,
    );
  });
});

describe("the API function's least privilege", () => {
  const role = 'FunctionsApiServiceRole';

  test('Step Functions: start, list, describe, read the history of and stop the four workflows’ executions; nothing else', () => {
    const statements = policyStatementsOf(template, role).filter((s) =>
      [s.Action].flat().some((a) => a.startsWith('states:')),
    );
    const actions = [...new Set(statements.flatMap((s) => [s.Action].flat()))].sort();
    expect(actions).toEqual([
      'states:DescribeExecution',
      'states:GetExecutionHistory',
      'states:ListExecutions',
      'states:StartExecution',
      'states:StopExecution',
    ]);
    const machines = ['Backup', 'Restore', 'Verify', 'Migrate'];
    for (const resource of statements.flatMap((s) => [s.Resource].flat())) {
      const text = flatten(resource);
      expect(
        machines.some((m) => text.includes(`<${m}StateMachine`) || text.includes(`"${m}StateMachine`)),
      ).toBe(true);
    }
  });

  test('the store: read only (no write, tag or delete); no secret, no database', () => {
    const actions = allowedActionsOf(template, role);
    expect(actions.filter((a) => a.startsWith('s3:'))).toEqual(
      expect.arrayContaining(['s3:GetObject*', 's3:List*']),
    );
    expect(actions.filter((a) => /^s3:(Put|Delete)|Tagging$/.test(a) && a !== 's3:GetObjectTagging')).toEqual(
      [],
    );
    expect(actions.filter((a) => /^(secretsmanager|rds-db|ecs|events|iam):/.test(a))).toEqual([]);
  });

  test('in the VPC, in the AWS API clients’ security group (no route to a database or the internet)', () => {
    const [, fn] = Object.entries(resources).find(
      ([id, r]) => id.startsWith('FunctionsApi') && r.Type === 'AWS::Lambda::Function',
    ) ?? ['', { Properties: {} }];
    const { VpcConfig, Environment } = fn.Properties as {
      VpcConfig: { SecurityGroupIds: unknown[] };
      Environment: { Variables: Record<string, unknown> };
    };
    expect(VpcConfig.SecurityGroupIds.map(flatten)).toEqual([
      expect.stringMatching(/^<NetworkAwsApiClients/),
    ]);
    expect(Object.keys(Environment.Variables)).toEqual(
      expect.arrayContaining(['PGFERRY_STORE', 'PGFERRY_STATE_MACHINES']),
    );
  });

  test('API Gateway may invoke it for this API only (one permission, not one per method)', () => {
    const permissions = ofType(template, 'AWS::Lambda::Permission').filter(([id]) => id.startsWith('Api'));
    expect(permissions).toHaveLength(1);
    const [, permission] = permissions[0];
    expect(permission.Properties.Principal).toBe('apigateway.amazonaws.com');
    expect(flatten(permission.Properties.SourceArn)).toBe(
      `arn:aws:execute-api:${REGION}:${ACCOUNT}:<${restApiId}>/*/*/*`,
    );
  });
});

test('the API and its run events add under 60 resources, and the example stack stays well within 500', () => {
  const count = (t: Template) => Object.keys(t.toJSON().Resources as object).length;
  const withoutApi = templateOf(minimalConfig({ api: { enabled: false } }));
  const withApi = templateOf(minimalConfig());
  const added = count(withApi) - count(withoutApi);
  expect(added).toBeGreaterThan(30); // not vacuous: the API is there
  expect(added).toBeLessThan(60);
  expect(count(template)).toBeLessThan(400);
  expect(ofType(withoutApi, 'AWS::ApiGateway::RestApi')).toEqual([]);
  expect(ofType(withoutApi, 'AWS::Events::Rule').map(([id]) => id)).not.toContainEqual(
    expect.stringMatching(/^RunEvents/),
  );
});
