import {
  credentialsEnv,
  credentialsFromEnv,
  localPassword,
  withCredentials,
} from '../../../core/credentials';

test("a process's credentials are pgferry's own variables; an empty one is none", () => {
  expect(
    credentialsFromEnv({ PGFERRY_SOURCE_PASSWORD: 's', PGFERRY_TARGET_PASSWORD: '', PGPASSWORD: 'p' }),
  ).toEqual({
    source: 's',
  });
});

test('credentials reach an environment as the runner reads them, absent ones not at all', () => {
  expect(credentialsEnv({ target: 't' })).toEqual({ PGFERRY_TARGET_PASSWORD: 't' });
  expect(credentialsEnv({})).toEqual({});
});

test("a step's environment holds the run's credentials, not the process's", () => {
  const env = { PATH: '/bin', PGFERRY_SOURCE_PASSWORD: 'inherited', PGFERRY_TARGET_PASSWORD: 'inherited' };
  expect(withCredentials(env, { source: 'given' })).toEqual({
    PATH: '/bin',
    PGFERRY_SOURCE_PASSWORD: 'given',
  });
  expect(env.PGFERRY_TARGET_PASSWORD).toBe('inherited');
});

test("a local command's password: the URL's, else PGPASSWORD, else pgferry's variable for the role", () => {
  const env = { PGPASSWORD: 'libpq', PGFERRY_TARGET_PASSWORD: 'own' };
  expect(localPassword('url', 'target', env)).toBe('url');
  expect(localPassword(undefined, 'target', env)).toBe('libpq');
  expect(localPassword(undefined, 'target', { PGFERRY_TARGET_PASSWORD: 'own' })).toBe('own');
  expect(localPassword(undefined, 'source', { PGFERRY_TARGET_PASSWORD: 'own' })).toBeUndefined();
});
