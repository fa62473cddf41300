import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BackupRequestSchema } from '../../../core/contracts';
import { LocalStore } from '../../../core/store';
import { REPO, runNodeScript } from '../../support/cli';

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf';
const SOURCE =
  'postgres://pgferry_backup@shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432/shop?sslmode=verify-full';
const STORE = 's3://pgferry-storebucket-1a2b3c4d5e6f/backups';
const BACKUP_ARGS = [
  'backup',
  '--aws',
  '--source',
  SOURCE,
  '--password-secret-arn',
  SECRET_ARN,
  '--store',
  STORE,
];

interface SentRequest {
  command: string;
  input: Record<string, unknown>;
}

interface RecordedRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The requests the CLI sent, in order. */
  sent: SentRequest[];
  /** Recorded calls it did not make. */
  remaining: number;
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'pgferry-aws-client-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs the built `pgferry <args>` against test/fixtures/aws/<fixture>.json instead of AWS. */
async function pgferry(
  fixture: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<RecordedRun> {
  const sentFile = path.join(work, `${fixture}-${Math.random().toString(16).slice(2)}.json`);
  const runner = path.join(REPO, 'test', 'support', 'recorded-aws-cli.js');
  const fixtureFile = path.join(REPO, 'test', 'fixtures', 'aws', `${fixture}.json`);
  const run = await runNodeScript(runner, [fixtureFile, sentFile, ...args], {
    env: { PGPASSWORD: 'local-password-never-sent', ...env },
  });
  const { sent, remaining } = JSON.parse(readFileSync(sentFile, 'utf8'));
  return { ...run, sent, remaining };
}

describe('pgferry --aws against recorded service responses', () => {
  test('backup: starts the stack backup state machine, prints each state once and the backup id', async () => {
    const run = await pgferry('backup-succeeded', BACKUP_ARGS);
    expect(run).toMatchObject({ code: 0, stdout: '20260315T020000Z-3fa9c1\n', remaining: 0 });
    expect(run.stderr.split('\n')).toEqual([
      expect.stringMatching(/^execution arn:aws:states:eu-west-1:123456789012:execution:BackupStateMachine/),
      'Preflight … running',
      'Preflight … done',
      'Dump … running',
      'Dump … done',
      'Record … running',
      'Record … done',
      '',
    ]);
    expect(run.sent[0]).toEqual({ command: 'DescribeStacksCommand', input: { StackName: 'Pgferry' } });
  });

  test("backup --json prints the manifest the execution's output names, read from the store", async () => {
    // The execution's output is the backup in brief; the manifest is where it says, in the store.
    const dir = mkdtempSync(path.join(work, 'store-'));
    const manifestFile = path.join(REPO, 'test', 'fixtures', 'aws', 'backup-succeeded.manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    await new LocalStore(dir).putJson(`shop/${manifest.id}/manifest.json`, manifest);
    const run = await pgferry('backup-succeeded', [...BACKUP_ARGS, '--json'], {
      RECORDED_STORE_URL: pathToFileURL(dir).href,
    });
    expect(run).toMatchObject({ code: 0, remaining: 0 });
    expect(JSON.parse(run.stdout)).toEqual(manifest);
  });

  test('backup --json whose manifest is not in the store: one line naming it, exit 1', async () => {
    const dir = mkdtempSync(path.join(work, 'store-'));
    const run = await pgferry('backup-succeeded', [...BACKUP_ARGS, '--json'], {
      RECORDED_STORE_URL: pathToFileURL(dir).href,
    });
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr.trimEnd().split('\n').at(-1)).toBe(
      `pgferry: the manifest shop/20260315T020000Z-3fa9c1/manifest.json is not in ${pathToFileURL(dir).href}`,
    );
  });

  test('the execution input is the validated backup request, with the secret ARN and no password', async () => {
    const run = await pgferry('backup-succeeded', BACKUP_ARGS);
    const start = run.sent.find((r) => r.command === 'StartExecutionCommand');
    expect(start?.input.stateMachineArn).toBe(
      'arn:aws:states:eu-west-1:123456789012:stateMachine:BackupStateMachine2E01A3A5-Xk3Yq0pL9ZfB',
    );
    const text = String(start?.input.input);
    expect(text).not.toContain('local-password-never-sent');
    expect(text).not.toMatch(/"password"/i);
    const input = JSON.parse(text);
    expect(BackupRequestSchema.parse(input)).toEqual(input);
    expect(input).toEqual({
      source: {
        host: 'shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com',
        port: 5432,
        database: 'shop',
        user: 'pgferry_backup',
        sslmode: 'verify-full',
        passwordSecretArn: SECRET_ARN,
      },
      store: STORE,
      compression: { codec: 'zstd', level: 1 },
      withRolePasswords: false,
    });
  });

  test('backup --aws takes its store from PGFERRY_STORE and its source from the config file (@name)', async () => {
    const configFile = path.join(work, 'config.json');
    writeFileSync(configFile, JSON.stringify({ stores: { s3: STORE }, sources: { shop: SOURCE } }));
    const viaFlags = await pgferry('backup-succeeded', BACKUP_ARGS);
    const viaProfile = await pgferry(
      'backup-succeeded',
      ['backup', '--aws', '--source', '@shop', '--password-secret-arn', SECRET_ARN],
      { PGFERRY_STORE: '@s3', PGFERRY_CONFIG: configFile },
    );
    expect(viaProfile).toMatchObject({ code: 0, stdout: '20260315T020000Z-3fa9c1\n', remaining: 0 });
    const input = (run: RecordedRun) =>
      run.sent.find((r) => r.command === 'StartExecutionCommand')?.input.input;
    expect(input(viaProfile)).toEqual(input(viaFlags));
  });

  test('the history is followed across pages (nextToken) without repeating events', async () => {
    const run = await pgferry('backup-succeeded', BACKUP_ARGS);
    const histories = run.sent.filter((r) => r.command === 'GetExecutionHistoryCommand');
    // Three polls of 2, 2 and 3 pages: every page after a poll's first asks with the previous one's token.
    expect(histories.map((h) => h.input.nextToken ?? null)).toEqual([
      null,
      expect.stringMatching(/^AAAA/),
      null,
      expect.stringMatching(/^AAAA/),
      null,
      expect.stringMatching(/^AAAA/),
      expect.stringMatching(/^AAAA/),
    ]);
    expect(histories.every((h) => h.input.reverseOrder === false)).toBe(true);
    const lines = run.stderr.trim().split('\n');
    expect(new Set(lines).size).toBe(lines.length);
  });

  test('a failed execution: one line with its error and cause, exit 1, nothing on stdout', async () => {
    const run = await pgferry('backup-failed', BACKUP_ARGS);
    expect(run).toMatchObject({ code: 1, stdout: '', remaining: 0 });
    const lines = run.stderr.trim().split('\n');
    expect(lines.slice(1, -1)).toEqual(['Preflight … running']);
    expect(lines.at(-1)).toBe(
      'pgferry: Pgferry.AuthenticationFailed: password authentication failed for user "pgferry_backup" on ' +
        'shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432/shop: check the secret ' +
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf',
    );
  });

  test('a stopped execution: its error, and where what the cleanup after it did will show (its run, its event)', async () => {
    const run = await pgferry('backup-stopped', BACKUP_ARGS);
    expect(run).toMatchObject({ code: 1, stdout: '', remaining: 0 });
    expect(run.stderr.trim().split('\n').at(-1)).toBe(
      'pgferry: pgferry.Cancelled: cancelled through the API (DELETE /v1/runs/{id}); its cleanup runs after it, apart: ' +
        "once done, GET /v1/runs/backup-7d0c4b9e-2f61-4a53-9d8e-5b1f0c3a6e21 and the run's event say what it did and left",
    );
  });

  test('a stack that does not exist: one line that says so and how to name another', async () => {
    const run = await pgferry('stack-not-found', [...BACKUP_ARGS, '--stack', 'Nope']);
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toMatch(/^pgferry: no stack Nope in this account and region: .*--stack <name>.*\n$/);
    expect(run.stderr.split('\n')).toHaveLength(2);
    expect(run.sent).toEqual([{ command: 'DescribeStacksCommand', input: { StackName: 'Nope' } }]);
  });

  test('PGFERRY_STACK names the stack when --stack does not', async () => {
    const run = await pgferry('stack-not-found', BACKUP_ARGS, { PGFERRY_STACK: 'Nope' });
    expect(run.sent[0].input).toEqual({ StackName: 'Nope' });
  });

  test('a --source URL with a password is refused before any AWS call', async () => {
    const source = 'postgres://pgferry_backup:s3cr%40t@shop.example.com:5432/shop';
    const args = [
      'backup',
      '--aws',
      '--source',
      source,
      '--password-secret-arn',
      SECRET_ARN,
      '--store',
      STORE,
    ];
    const run = await pgferry('backup-succeeded', args);
    expect(run).toMatchObject({ code: 1, stdout: '', sent: [] });
    expect(run.stderr).toMatch(/^pgferry: --source contains a password.*--password-secret-arn <arn>.*\n$/);
    expect(run.stderr.split('\n')).toHaveLength(2);
    expect(run.stderr).not.toContain('s3cr');
  });

  test('--iam-auth: the execution input asks for RDS IAM authentication and carries no secret', async () => {
    const args = BACKUP_ARGS.filter((a) => a !== '--password-secret-arn' && a !== SECRET_ARN);
    const run = await pgferry('backup-succeeded', [...args, '--iam-auth']);
    expect(run.code).toBe(0);
    const start = run.sent.find((r) => r.command === 'StartExecutionCommand');
    const input = BackupRequestSchema.parse(JSON.parse(String(start?.input.input)));
    expect(input.source).toMatchObject({ iamAuth: true, user: 'pgferry_backup' });
    expect(input.source.passwordSecretArn).toBeUndefined();
  });

  test('--aws needs --password-secret-arn, and a local run refuses it', async () => {
    const noSecret = await pgferry('backup-succeeded', [
      'backup',
      '--aws',
      '--source',
      SOURCE,
      '--store',
      STORE,
    ]);
    expect(noSecret).toMatchObject({ code: 1, sent: [] });
    expect(noSecret.stderr).toMatch(/^pgferry: --aws needs --password-secret-arn <arn>/);
    const local = await pgferry('backup-succeeded', [
      'backup',
      '--source',
      SOURCE,
      '--password-secret-arn',
      SECRET_ARN,
      '--store',
      STORE,
    ]);
    expect(local).toMatchObject({ code: 1, sent: [] });
    expect(local.stderr).toMatch(/^pgferry: --password-secret-arn is for --aws only/);
  });

  test("list --aws lists the stack's store (its StoreUrl output) with the catalog", async () => {
    // The recorded stack, its StoreUrl swapped for an empty local folder this machine can read.
    const dir = mkdtempSync(path.join(work, 'store-'));
    const storeUrl = pathToFileURL(dir).href;
    const run = await pgferry('list-stack', ['list', '--aws'], { RECORDED_STORE_URL: storeUrl });
    expect(run).toMatchObject({ code: 0, stdout: '', remaining: 0 });
    expect(run.stderr).toBe(`no complete backups in ${storeUrl}\n`);
  });

  test('list without --store or --aws still needs a store', async () => {
    const run = await pgferry('list-stack', ['list']);
    expect(run).toMatchObject({ code: 1, sent: [] });
    expect(run.stderr).toMatch(
      /^pgferry: no store given: pass --store <store>, set PGFERRY_STORE, or set defaults.store in \S+\/pgferry\/config.json\n$/,
    );
  });
});
