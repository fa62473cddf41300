import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { main } from '../../cli/main';
import { BackupRequestSchema } from '../../core/contracts';
import { replay } from '../support/recorded-aws';

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf';
const SOURCE = 'postgres://pgferry_backup@shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432/shop?sslmode=verify-full';
const STORE = 's3://pgferry-storebucket-1a2b3c4d5e6f/backups';
const BACKUP_ARGS = ['backup', '--aws', '--source', SOURCE, '--password-secret-arn', SECRET_ARN, '--store', STORE];

/** Runs `pgferry <args>` in-process with `access`, capturing stdout, stderr and the exit code. */
async function pgferry(args: string[], access: Parameters<typeof main>[1]) {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  const previousExitCode = process.exitCode;
  process.exitCode = undefined;
  try {
    await main(['node', 'pgferry', ...args], access);
    return { code: process.exitCode ?? 0, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = previousExitCode;
  }
}

describe('pgferry --aws against recorded service responses', () => {
  const previousPassword = process.env.PGPASSWORD;
  beforeEach(() => {
    process.env.PGPASSWORD = 'local-password-never-sent';
  });
  afterEach(() => {
    if (previousPassword === undefined) delete process.env.PGPASSWORD;
    else process.env.PGPASSWORD = previousPassword;
  });

  test('backup: starts the stack backup state machine, prints each state once and the backup id', async () => {
    const recording = replay('backup-succeeded');
    const result = await pgferry(BACKUP_ARGS, recording.access);

    expect(result).toMatchObject({ code: 0, stdout: '20260315T020000Z-3fa9c1\n' });
    expect(result.stderr.split('\n')).toEqual([
      expect.stringMatching(/^execution arn:aws:states:eu-west-1:123456789012:execution:BackupStateMachine/),
      'Preflight … running',
      'Preflight … done',
      'Dump … running',
      'Dump … done',
      'Record … running',
      'Record … done',
      '',
    ]);
    expect(recording.remaining()).toBe(0);
    expect(recording.sent[0]).toEqual({ command: 'DescribeStacksCommand', input: { StackName: 'Pgferry' } });
  });

  test('backup --json prints the execution output (the manifest)', async () => {
    const result = await pgferry([...BACKUP_ARGS, '--json'], replay('backup-succeeded').access);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ id: '20260315T020000Z-3fa9c1', database: 'shop' });
  });

  test('the execution input is the validated backup request, with the secret ARN and no password', async () => {
    const recording = replay('backup-succeeded');
    await pgferry(BACKUP_ARGS, recording.access);
    const start = recording.sent.find((r) => r.command === 'StartExecutionCommand');
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

  test('the history is followed across pages (nextToken), from where it was, without repeating events', async () => {
    const recording = replay('backup-succeeded');
    const result = await pgferry(BACKUP_ARGS, recording.access);
    const histories = recording.sent.filter((r) => r.command === 'GetExecutionHistoryCommand');
    // Three polls: 2 + 2 + 3 pages; each page after the first asks with the previous page's token.
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
    const lines = result.stderr.trim().split('\n');
    expect(new Set(lines).size).toBe(lines.length);
  });

  test('a failed execution: one line with its error and cause, exit 1, nothing on stdout', async () => {
    const result = await pgferry(BACKUP_ARGS, replay('backup-failed').access);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines.slice(1, -1)).toEqual(['Preflight … running']);
    expect(lines.at(-1)).toBe(
      'pgferry: Pgferry.AuthenticationFailed: password authentication failed for user "pgferry_backup" on ' +
        'shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432/shop: check the secret ' +
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf',
    );
  });

  test('a stack that does not exist: one line that says so and how to name another', async () => {
    const recording = replay('stack-not-found');
    const result = await pgferry([...BACKUP_ARGS, '--stack', 'Nope'], recording.access);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toMatch(/^pgferry: no stack Nope in this account and region: .*--stack <name>.*\n$/);
    expect(result.stderr.split('\n')).toHaveLength(2);
    expect(recording.sent).toEqual([{ command: 'DescribeStacksCommand', input: { StackName: 'Nope' } }]);
  });

  test('PGFERRY_STACK names the stack when --stack does not', async () => {
    process.env.PGFERRY_STACK = 'Nope';
    try {
      const recording = replay('stack-not-found');
      await pgferry(BACKUP_ARGS, recording.access);
      expect(recording.sent[0].input).toEqual({ StackName: 'Nope' });
    } finally {
      delete process.env.PGFERRY_STACK;
    }
  });

  test('a --source URL with a password is refused before any AWS call', async () => {
    const recording = replay('backup-succeeded');
    const source = 'postgres://pgferry_backup:s3cr%40t@shop.example.com:5432/shop';
    const args = ['backup', '--aws', '--source', source, '--password-secret-arn', SECRET_ARN, '--store', STORE];
    const result = await pgferry(args, recording.access);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toMatch(/^pgferry: --source contains a password.*--password-secret-arn <arn>.*\n$/);
    expect(result.stderr).not.toContain('s3cr');
    expect(recording.sent).toEqual([]);
  });

  test('--aws needs --password-secret-arn, and a local run refuses it', async () => {
    const noSecret = replay('backup-succeeded');
    const result = await pgferry(['backup', '--aws', '--source', SOURCE, '--store', STORE], noSecret.access);
    expect(result.stderr).toMatch(/^pgferry: --aws needs --password-secret-arn <arn>/);
    expect(noSecret.sent).toEqual([]);
    const local = await pgferry(
      ['backup', '--source', SOURCE, '--password-secret-arn', SECRET_ARN, '--store', STORE],
      replay('backup-succeeded').access,
    );
    expect(local).toMatchObject({ code: 1 });
    expect(local.stderr).toMatch(/^pgferry: --password-secret-arn is for --aws only/);
  });

  test("list --aws lists the stack's store (StoreUrl) with the catalog", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgferry-aws-list-'));
    try {
      // The recorded stack, its store swapped for an empty local folder that this machine can read.
      const storeUrl = pathToFileURL(dir).href;
      const recording = replay('list-stack', (calls) => {
        const outputs = (calls[0].response as { Stacks: { Outputs: { OutputKey: string; OutputValue: string }[] }[] })
          .Stacks[0].Outputs;
        const store = outputs.find((o) => o.OutputKey === 'StoreUrl');
        if (store) store.OutputValue = storeUrl;
      });
      const result = await pgferry(['list', '--aws', '--stack', 'Pgferry'], recording.access);
      expect(result).toMatchObject({ code: 0, stdout: '' });
      expect(result.stderr).toBe(`no complete backups in ${storeUrl}\n`);
      expect(recording.remaining()).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('list without --store or --aws still needs --store', async () => {
    const result = await pgferry(['list'], replay('list-stack').access);
    expect(result).toMatchObject({ code: 1 });
    expect(result.stderr).toBe("pgferry: required option '--store <store>' not specified\n");
  });
});
