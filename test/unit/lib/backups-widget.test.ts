/**
 * The dashboard's backups widget (lib/backups-widget.ts): a custom widget first on the dashboard,
 * backed by a function that may list the store and read its manifests and verification reports —
 * nothing else of the bucket — and a grant for the viewers to invoke it.
 */
import { minimalConfig, templateOf } from './fixtures';

const template = templateOf(minimalConfig());
const resources = template.toJSON().Resources as Record<
  string,
  { Type: string; Properties: Record<string, unknown> }
>;

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

function logicalId(prefix: string, type: string): string {
  const id = Object.keys(resources).find((k) => k.startsWith(prefix) && resources[k].Type === type);
  if (!id) throw new Error(`no ${type} ${prefix}`);
  return id;
}

/** `Fn::Join` and `Fn::GetAtt` flattened: `<Id.Attr>/backups/…`. */
function flat(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (v['Fn::Join'])
    return (v['Fn::Join'] as [string, unknown[]])[1].map(flat).join((v['Fn::Join'] as [string])[0]);
  if (v['Fn::GetAtt']) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  if (v.Ref) return `<${v.Ref}>`;
  return JSON.stringify(value);
}

test("the widget's function reads the catalog only: list backups/, read manifests and verification reports", () => {
  const role = logicalId('FunctionsBackupsWidgetServiceRole', 'AWS::IAM::Role');
  const statements = Object.values(resources)
    .filter(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        (r.Properties.Roles as { Ref: string }[]).some((x) => x.Ref === role),
    )
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
  const bucket = logicalId('StoreBucket', 'AWS::S3::Bucket');
  const byAction = (action: string) => statements.filter((s) => [s.Action].flat().includes(action));
  expect(statements.flatMap((s) => [s.Action].flat()).sort()).toEqual([
    'kms:Decrypt',
    's3:GetObject',
    's3:ListBucket',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ]);
  const [list] = byAction('s3:ListBucket');
  expect(flat(list.Resource)).toBe(`<${bucket}.Arn>`);
  expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['backups/', 'backups/*'] } });
  const [get] = byAction('s3:GetObject');
  expect([get.Resource].flat().map(flat).sort()).toEqual([
    `<${bucket}.Arn>/backups/*/manifest.json`,
    `<${bucket}.Arn>/backups/*/verify-report-*.json`,
  ]);
  const [decrypt] = byAction('kms:Decrypt');
  expect(flat(decrypt.Condition?.StringEquals['kms:ViaService'])).toBe('s3.eu-west-1.<AWS::URLSuffix>');
  // The key policy lets the role decrypt through S3 (the key trusts no account-wide IAM policy).
  const keyPolicy = JSON.stringify(resources[logicalId('StoreKey', 'AWS::KMS::Key')].Properties.KeyPolicy);
  expect(keyPolicy).toContain(role);
});

test('the widget is the first on the dashboard, and invokes its function', () => {
  const dashboard = resources[logicalId('MonitoringDashboard', 'AWS::CloudWatch::Dashboard')];
  const body = flat(dashboard.Properties.DashboardBody);
  const first = body.indexOf('"type":"custom"');
  expect(first).toBeGreaterThan(-1);
  expect(first).toBeLessThan(body.indexOf('"type":"metric"'));
  expect(body).toContain(
    `"endpoint":"<${logicalId('FunctionsBackupsWidget', 'AWS::Lambda::Function')}.Arn>"`,
  );
});

test('viewers need a grant to invoke it: a managed policy of that one action on that one function', () => {
  const policy = resources[logicalId('BackupsWidgetViewPolicy', 'AWS::IAM::ManagedPolicy')];
  const [statement, ...rest] = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
  expect(rest).toEqual([]);
  expect(statement.Action).toBe('lambda:InvokeFunction');
  expect(flat(statement.Resource)).toBe(
    `<${logicalId('FunctionsBackupsWidget', 'AWS::Lambda::Function')}.Arn>`,
  );
});
