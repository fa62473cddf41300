import { ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { z } from 'zod';
import type { RunKind } from '../api/runs';
import { API_ENV } from '../lambdas/api/environment';
import type { BackupBucket } from './backup-bucket';
import { acknowledge, acknowledgeWildcards, wildcardResource } from './nag';
import type { WorkflowFunctions } from './workflow-functions';

type HttpMethod = 'GET' | 'POST' | 'DELETE';

/** One route of the API: a method on a path (`{param}` for path parameters). */
export interface ApiRoute {
  readonly method: HttpMethod;
  readonly path: string;
  /** The run a POST starts: its body is that workflow's request (less the store). */
  readonly starts?: RunKind;
}

/**
 * Every route of the API (api/app.ts serves them): one API Gateway method each, so that each is
 * its own `execute-api:Invoke` resource and grants can tell them apart.
 */
export const API_ROUTES: readonly ApiRoute[] = [
  { method: 'GET', path: '/openapi.json' },
  { method: 'POST', path: '/v1/backups', starts: 'backup' },
  { method: 'GET', path: '/v1/backups' },
  { method: 'GET', path: '/v1/backups/{database}/{id}' },
  { method: 'POST', path: '/v1/restores', starts: 'restore' },
  { method: 'POST', path: '/v1/verifications', starts: 'verify' },
  { method: 'POST', path: '/v1/migrations', starts: 'migrate' },
  { method: 'GET', path: '/v1/runs' },
  { method: 'GET', path: '/v1/runs/{id}' },
  { method: 'DELETE', path: '/v1/runs/{id}' },
  { method: 'GET', path: '/v1/status' },
];

/** The four things a caller may be allowed, each an `execute-api:Invoke` grant of its own. */
export type ApiGrant = 'readCatalog' | 'backUp' | 'restore' | 'migrate';

/** A method and a resource path as `execute-api:Invoke` names it: `*` matches any characters. */
export interface InvokeResource {
  readonly method: HttpMethod;
  readonly path: string;
}

/** The runs of `kinds`: read and cancelled by id, whose prefix is the kind (`migrate-…`). */
function runsOf(...kinds: RunKind[]): InvokeResource[] {
  return kinds.flatMap((kind) => [
    { method: 'GET' as const, path: `/v1/runs/${kind}-*` },
    { method: 'DELETE' as const, path: `/v1/runs/${kind}-*` },
  ]);
}

/**
 * What each grant may invoke. A run's id begins with its kind, so a grant may follow and cancel
 * only the runs it may start; reading the catalog includes every run's status (no data: the
 * results are manifests and reports, which reading the catalog shows anyway).
 */
export const API_GRANTS: Record<ApiGrant, { description: string; allows: readonly InvokeResource[] }> = {
  readCatalog: {
    description: 'read the catalog, the status and every run',
    allows: [
      { method: 'GET', path: '/openapi.json' },
      { method: 'GET', path: '/v1/backups' },
      { method: 'GET', path: '/v1/backups/*' },
      { method: 'GET', path: '/v1/status' },
      { method: 'GET', path: '/v1/runs' },
      { method: 'GET', path: '/v1/runs/*' },
    ],
  },
  backUp: {
    description: 'start backups and verifications, follow and cancel them',
    allows: [
      { method: 'POST', path: '/v1/backups' },
      { method: 'POST', path: '/v1/verifications' },
      ...runsOf('backup', 'verify'),
    ],
  },
  restore: {
    description: 'start restores (into configured targets only), follow and cancel them',
    allows: [{ method: 'POST', path: '/v1/restores' }, ...runsOf('restore')],
  },
  migrate: {
    description: 'start migrations (into configured targets only), follow and cancel them',
    allows: [{ method: 'POST', path: '/v1/migrations' }, ...runsOf('migrate')],
  },
};

export interface PgferryApiProps {
  /** Where the API's function is built (in the VPC, in the AWS API clients' group). */
  readonly functions: WorkflowFunctions;
  /** The state machine of each kind of run. */
  readonly stateMachines: Record<RunKind, sfn.IStateMachine>;
  /** The store: the catalog the API reads, the store every run is given. */
  readonly store: BackupBucket;
  /**
   * Each POST's body, as the application validates it (zod): API Gateway validates the same
   * schema (JSON Schema draft 4) before the function is invoked.
   */
  readonly requestBodies: Record<RunKind, z.ZodType>;
  /**
   * `regional`, or `private` (reachable only through `vpcEndpointIds`).
   * @default regional
   */
  readonly endpoint?: 'regional' | 'private';
  /**
   * With a private endpoint: the `execute-api` VPC endpoints that may reach it.
   * @default none
   */
  readonly vpcEndpointIds?: readonly string[];
  /**
   * Accounts whose principals may call the API (besides this one's).
   * @default none
   */
  readonly allowedAccountIds?: readonly string[];
  /**
   * The stage's steady rate (requests per second) and burst.
   * @default 10 and 20
   */
  readonly throttle?: { readonly rateLimit: number; readonly burstLimit: number };
  /**
   * Create API Gateway's account-wide CloudWatch Logs role (kept when the stack is deleted:
   * other APIs of the account may log through it).
   * @default true
   */
  readonly createCloudWatchRole?: boolean;
  /**
   * How long access logs are kept.
   * @default one year
   */
  readonly accessLogRetention?: logs.RetentionDays;
}

const DEFAULTS = {
  throttle: { rateLimit: 10, burstLimit: 20 },
  accessLogRetention: logs.RetentionDays.ONE_YEAR,
  /** The stage: URLs are `https://<api>.execute-api.<region>.amazonaws.com/api/v1/…`. */
  stageName: 'api',
} as const;

/**
 * The access log line: who called what, and how it ended. No body, no header (an
 * `Authorization` header or a body holds nothing secret with IAM, but neither is worth keeping),
 * no query string (the path and the method say what was done).
 */
export const ACCESS_LOG_FIELDS: Readonly<Record<string, string>> = {
  requestId: '$context.requestId',
  requestTime: '$context.requestTime',
  sourceIp: '$context.identity.sourceIp',
  caller: '$context.identity.caller',
  userArn: '$context.identity.userArn',
  vpceId: '$context.identity.vpceId',
  httpMethod: '$context.httpMethod',
  resourcePath: '$context.resourcePath',
  path: '$context.path',
  status: '$context.status',
  responseLength: '$context.responseLength',
  // Not `$context.error.validationErrorString`: it quotes the body's values it refuses.
  errorMessage: '$context.error.message',
  integrationStatus: '$context.integration.status',
  integrationLatency: '$context.integration.latency',
  latency: '$context.responseLatency',
};

/**
 * API Gateway's answer to a body its model refuses, shaped like the application's 400. A gateway
 * response template is plain substitution (no VTL, no escaping): `messageString` is the one error
 * variable API Gateway quotes for JSON, so the body says only "Invalid request body" — the list of
 * problems (`validationErrorString`) holds quotes, and would break the JSON.
 */
const BAD_REQUEST_BODY_TEMPLATE = '{"error":"InvalidRequest","message":$context.error.messageString}';

/** A zod schema as an API Gateway model's schema (JSON Schema draft 4, as a request is sent). */
export function modelSchema(schema: z.ZodType): apigw.JsonSchema {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { target: 'draft-4', io: 'input' }) as Record<
    string,
    unknown
  >;
  return { schema: apigw.JsonSchemaVersion.DRAFT4, ...json } as apigw.JsonSchema;
}

/**
 * pgferry's HTTP API on AWS: an API Gateway REST API whose every method is authorized by IAM
 * (SigV4) and proxied to one Lambda function, which serves the same application as
 * `pgferry serve` (api/app.ts) over Step Functions (lambdas/api). Each route is a method of its
 * own, so IAM policies grant reading the catalog, backing up, restoring and migrating apart
 * (`API_GRANTS`; a managed policy each, `grantPolicies`). POST bodies are validated by API
 * Gateway against models generated from the application's zod schemas; the stage is throttled
 * and writes access logs without bodies or headers.
 */
export class PgferryApi extends Construct {
  readonly api: apigw.RestApi;
  readonly handler: lambda.IFunction;
  readonly accessLogs: logs.LogGroup;
  /** The function's environment (the store and the state machines), for the functions beside it. */
  readonly environment: Record<string, string>;
  /** A managed policy per grant, to attach to the callers' roles. */
  readonly grantPolicies: Record<ApiGrant, iam.ManagedPolicy>;

  constructor(scope: Construct, id: string, props: PgferryApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const endpoint = props.endpoint ?? 'regional';
    const throttle = props.throttle ?? DEFAULTS.throttle;

    this.environment = {
      [API_ENV.store]: props.store.storeUrl,
      [API_ENV.stateMachines]: stateMachinesEnvironment(props.stateMachines),
      [API_ENV.basePath]: `/${DEFAULTS.stageName}`,
    };
    this.handler = this.buildHandler(props);
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? DEFAULTS.accessLogRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const createCloudWatchRole = props.createCloudWatchRole ?? true;
    this.api = new apigw.RestApi(this, 'Api', {
      restApiName: `${stack.stackName}-pgferry`,
      description: 'pgferry: backups, restores, verifications and migrations over HTTP (IAM-authorized)',
      endpointConfiguration:
        endpoint === 'private'
          ? {
              types: [apigw.EndpointType.PRIVATE],
              // Associated, so that each endpoint also has the API's own host name.
              vpcEndpoints: (props.vpcEndpointIds ?? []).map((vpcEndpointId) =>
                ec2.InterfaceVpcEndpoint.fromInterfaceVpcEndpointAttributes(this, vpcEndpointId, {
                  vpcEndpointId,
                  port: 443,
                }),
              ),
            }
          : { types: [apigw.EndpointType.REGIONAL] },
      policy: this.resourcePolicy(endpoint, props),
      cloudWatchRole: createCloudWatchRole,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: DEFAULTS.stageName,
        throttlingRateLimit: throttle.rateLimit,
        throttlingBurstLimit: throttle.burstLimit,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigw.AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FIELDS)),
        // Execution logs of errors only, and never a request's or response's data.
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
      },
      defaultMethodOptions: { authorizationType: apigw.AuthorizationType.IAM },
    });
    this.api.addGatewayResponse('BadRequestBody', {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: { 'application/json': BAD_REQUEST_BODY_TEMPLATE },
    });
    this.addRoutes(props.requestBodies);
    this.grantPolicies = this.buildGrantPolicies();
    this.acknowledgeFindings(createCloudWatchRole);

    new CfnOutput(stack, 'ApiUrl', {
      description: 'The pgferry API (IAM-authorized): e.g. POST <url>/v1/migrations, signed with SigV4',
      value: this.api.url,
    });
    for (const [grant, policy] of Object.entries(this.grantPolicies)) {
      new CfnOutput(stack, `Api${grant[0].toUpperCase()}${grant.slice(1)}PolicyArn`, {
        description: `Attach to a caller's role: may ${API_GRANTS[grant as ApiGrant].description}`,
        value: policy.managedPolicyArn,
      });
    }
  }

  /**
   * The function: the application over Step Functions and the store. It may start, describe,
   * list and stop executions of the four state machines and read the store; nothing else.
   */
  private buildHandler(props: PgferryApiProps): lambda.IFunction {
    const kinds = Object.keys(props.stateMachines) as RunKind[];
    const fn = props.functions.add('Api', {
      folder: 'api',
      name: 'api',
      description: 'pgferry: the HTTP API (API Gateway proxy), over the Step Functions workflows',
      // API Gateway gives up after 29 s.
      timeout: Duration.seconds(29),
      environment: this.environment,
    });
    for (const kind of kinds) {
      const machine = props.stateMachines[kind];
      machine.grantStartExecution(fn);
      machine.grant(fn, 'states:ListExecutions');
      machine.grantExecution(
        fn,
        'states:DescribeExecution',
        'states:GetExecutionHistory',
        'states:StopExecution',
      );
    }
    props.store.grantReadBackups(fn);
    acknowledgeExecutionGrants(fn, props.stateMachines, 'described, their history read, stopped');
    return fn;
  }

  /**
   * No resource policy for a regional API of this account alone: IAM policies decide. Otherwise
   * it allows the accounts named (their principals still need an IAM policy of their own) and,
   * for a private API, denies every request that does not come through a named VPC endpoint.
   */
  private resourcePolicy(
    endpoint: 'regional' | 'private',
    props: PgferryApiProps,
  ): iam.PolicyDocument | undefined {
    const accounts = props.allowedAccountIds ?? [];
    if (endpoint === 'regional' && accounts.length === 0) return undefined;
    const invoke = 'execute-api:/*';
    const statements = [
      new iam.PolicyStatement({
        sid: 'AllowThisAndConfiguredAccounts',
        principals: [Stack.of(this).account, ...accounts].map((a) => new iam.AccountPrincipal(a)),
        actions: ['execute-api:Invoke'],
        resources: [invoke],
      }),
    ];
    if (endpoint === 'private') {
      statements.push(
        new iam.PolicyStatement({
          sid: 'DenyOutsideConfiguredVpcEndpoints',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['execute-api:Invoke'],
          resources: [invoke],
          conditions: { StringNotEquals: { 'aws:SourceVpce': [...(props.vpcEndpointIds ?? [])] } },
        }),
      );
    }
    return new iam.PolicyDocument({ statements });
  }

  private addRoutes(requestBodies: Record<RunKind, z.ZodType>): void {
    const integration = new apigw.LambdaIntegration(this.handler, {
      proxy: true,
      // One permission for the whole API rather than one per method (a stack holds 500 resources).
      scopePermissionToMethod: false,
    });
    const validator = new apigw.RequestValidator(this, 'BodyValidator', {
      restApi: this.api,
      requestValidatorName: 'body',
      validateRequestBody: true,
      // No method declares a required parameter: nothing is refused by it (cdk-nag's APIG2 asks for it).
      validateRequestParameters: true,
    });
    for (const route of API_ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      if (!route.starts) {
        resource.addMethod(route.method, integration);
        continue;
      }
      const model = this.api.addModel(`${route.starts[0].toUpperCase()}${route.starts.slice(1)}Request`, {
        contentType: 'application/json',
        description: `The body of POST ${route.path}: the ${route.starts} request, less the store`,
        schema: modelSchema(requestBodies[route.starts]),
      });
      resource.addMethod(route.method, integration, {
        requestValidator: validator,
        requestModels: { 'application/json': model },
      });
    }
  }

  /** The `execute-api:Invoke` ARNs of a grant, on the deployed stage. */
  invokeArns(grant: ApiGrant): string[] {
    return API_GRANTS[grant].allows.map((r) =>
      this.api.arnForExecuteApi(r.method, r.path, this.api.deploymentStage.stageName),
    );
  }

  private buildGrantPolicies(): Record<ApiGrant, iam.ManagedPolicy> {
    const policy = (grant: ApiGrant, id: string) =>
      new iam.ManagedPolicy(this, id, {
        description: `pgferry API: may ${API_GRANTS[grant].description}`,
        statements: [
          new iam.PolicyStatement({ actions: ['execute-api:Invoke'], resources: this.invokeArns(grant) }),
        ],
      });
    return {
      readCatalog: policy('readCatalog', 'ReadCatalogPolicy'),
      backUp: policy('backUp', 'BackUpPolicy'),
      restore: policy('restore', 'RestorePolicy'),
      migrate: policy('migrate', 'MigratePolicy'),
    };
  }

  private acknowledgeFindings(createCloudWatchRole: boolean): void {
    acknowledge(
      this.api,
      'AwsSolutions-APIG3',
      'every method is IAM-authorized and throttled; a WAF web ACL adds cost for callers that are already authenticated principals (attach one to the stage where the API is public and that is wanted)',
    );
    acknowledge(
      this.api,
      'AwsSolutions-COG4',
      'the API is authorized by IAM (SigV4) on every method, not by a Cognito user pool: its callers are AWS principals',
    );
    for (const [grant, policy] of Object.entries(this.grantPolicies)) {
      acknowledgeWildcards(
        policy,
        Object.fromEntries(
          this.invokeArns(grant as ApiGrant)
            .filter((arn) => arn.endsWith('*'))
            .map((arn) => [
              wildcardResource(this, arn),
              'an execute-api path ending in "*" stands for a path parameter: any backup, any run (or any run of one kind)',
            ]),
        ),
      );
    }
    if (createCloudWatchRole) {
      acknowledge(
        this.api,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        "API Gateway's account-wide logging role, with the AWS-managed policy API Gateway documents for it",
      );
    }
  }
}

/**
 * Acknowledges the wildcard of `fn`'s grants on the executions of `stateMachines`
 * (`…:execution:<machine>:*`): executions are named at run time.
 */
export function acknowledgeExecutionGrants(
  fn: lambda.IFunction,
  stateMachines: Record<RunKind, sfn.IStateMachine>,
  what: string,
): void {
  const stack = Stack.of(fn);
  acknowledgeWildcards(
    fn,
    Object.fromEntries(
      Object.entries(stateMachines).map(([kind, machine]) => {
        const { resourceName } = stack.splitArn(machine.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME);
        const executions = stack.formatArn({
          service: 'states',
          resource: 'execution',
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          resourceName: `${resourceName}:*`,
        });
        return [
          wildcardResource(fn, executions),
          `the executions of the ${kind} state machine, named at run time: ${what}`,
        ];
      }),
    ),
  );
}

/** The state machines' ARNs as the function's environment holds them: `{"backup": "arn:…", …}`. */
function stateMachinesEnvironment(machines: Record<RunKind, sfn.IStateMachine>): string {
  return Stack.of(Object.values(machines)[0]).toJsonString(
    Object.fromEntries(Object.entries(machines).map(([kind, m]) => [kind, m.stateMachineArn])),
  );
}
