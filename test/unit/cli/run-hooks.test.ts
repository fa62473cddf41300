/** `--on-success`/`--on-failure`: what a hook is told, and that it is never told a password. */
import { hookEnvironment, runHook, withRunHooks } from '../../../cli/run-hooks';

const outcome = {
  store: 'file:///srv/backups',
  key: 'shop/20260310T020000Z-abc123/manifest.json',
  backupId: '20260310T020000Z-abc123',
  database: 'shop',
};
const env = {
  PATH: '/usr/bin:/bin',
  PGPASSWORD: 'pw-pgpassword',
  PGFERRY_SOURCE_PASSWORD: 'pw-source-var',
  PGFERRY_SOURCE: 'postgres://app:pw-env-url@db/shop',
  PGFERRY_RETENTION_DAILY: '7',
};

test('a success tells the outcome, the store, the manifest and the command', () => {
  const out = hookEnvironment(
    env,
    'backup',
    { store: '/srv/backups', source: 'postgres://app@db/shop' },
    { outcome },
  );
  expect(out).toMatchObject({
    PGFERRY_OUTCOME: 'success',
    PGFERRY_COMMAND: 'backup',
    PGFERRY_EXIT_STATUS: '0',
    PGFERRY_BACKUP_ID: '20260310T020000Z-abc123',
    PGFERRY_DATABASE: 'shop',
    PGFERRY_STORE: 'file:///srv/backups',
    PGFERRY_DOCUMENT_URL: 'file:///srv/backups/shop/20260310T020000Z-abc123/manifest.json',
    PGFERRY_SOURCE: 'postgres://app@db/shop',
    PGFERRY_RETENTION_DAILY: '7',
  });
  expect(JSON.parse(out.PGFERRY_OUTCOME_JSON ?? '')).toEqual(outcome);
  expect(out.PGFERRY_ERROR).toBeUndefined();
});

test('a failure tells the error in one line and the database it was for', () => {
  const err = new Error('could not connect to\nthe server');
  const out = hookEnvironment(env, 'backup', { source: 'postgres://app@db/shop' }, { err, exitStatus: 1 });
  expect(out).toMatchObject({
    PGFERRY_OUTCOME: 'failure',
    PGFERRY_EXIT_STATUS: '1',
    PGFERRY_ERROR: 'could not connect to the server',
    PGFERRY_DATABASE: 'shop',
  });
  expect(out.PGFERRY_BACKUP_ID).toBeUndefined();
});

test('no password reaches the hook: not the variables, not a URL, not an error line', () => {
  const err = new Error('auth failed for pw-flag-url and pw-pgpassword');
  const opts = {
    source: 'postgres://app:pw-flag-url@db/shop',
    target: 'postgres://app:pw-target-url@db/copy',
    store: '/srv',
  };
  for (const result of [{ outcome }, { err, exitStatus: 1 }]) {
    const out = hookEnvironment(env, 'backup', opts, result);
    const all = JSON.stringify(out);
    expect(out.PGFERRY_TARGET_URL).toBe('postgres://app@db/copy');
    for (const secret of ['pw-pgpassword', 'pw-source-var', 'pw-env-url', 'pw-flag-url', 'pw-target-url']) {
      expect(all).not.toContain(secret);
    }
    expect(out.PGPASSWORD).toBeUndefined();
    expect(out.PGFERRY_SOURCE_PASSWORD).toBeUndefined();
  }
});

test('a hook that fails is one line on stderr; the run resolves as it would have', async () => {
  const written: string[] = [];
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    written.push(String(chunk));
    return true;
  });
  try {
    await runHook('--on-success', 'exit 7', { PATH: '/usr/bin:/bin' });
    const run = withRunHooks('backup', async () => outcome, { PATH: '/usr/bin:/bin' });
    await expect(run({ onSuccess: 'exit 3' })).resolves.toBeUndefined();
    const failing = withRunHooks(
      'backup',
      async () => {
        throw new Error('dump failed');
      },
      { PATH: '/usr/bin:/bin' },
    );
    await expect(failing({ onFailure: 'exit 4' })).rejects.toThrow('dump failed');
  } finally {
    spy.mockRestore();
  }
  expect(written).toEqual([
    "pgferry: the --on-success command failed (exit status 7); the run's exit status is its own\n",
    "pgferry: the --on-success command failed (exit status 3); the run's exit status is its own\n",
    "pgferry: the --on-failure command failed (exit status 4); the run's exit status is its own\n",
  ]);
});
