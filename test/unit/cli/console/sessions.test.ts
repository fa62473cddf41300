import {
  ConsoleSessions,
  cookieName,
  cookieValue,
  SESSION_IDLE_MS,
  sessionCookie,
} from '../../../../cli/console/sessions';

test('a sign-in code works once; an unknown one never', () => {
  const sessions = new ConsoleSessions();
  const code = sessions.newCode();
  expect(sessions.redeem('not-a-code')).toBeUndefined();
  expect(sessions.redeem(undefined)).toBeUndefined();
  const session = sessions.redeem(code);
  expect(session).toEqual({ id: expect.any(String), csrf: expect.any(String), lastUsed: expect.any(Number) });
  expect(session?.id).not.toBe(session?.csrf);
  expect(sessions.redeem(code)).toBeUndefined();
  expect(sessions.find(session?.id)).toBe(session);
});

test('a session unused for longer than its idle time has ended; a closed one too', () => {
  let now = 1_000;
  const sessions = new ConsoleSessions(() => now);
  const a = sessions.open();
  const b = sessions.open();
  now += SESSION_IDLE_MS - 1;
  expect(sessions.find(a.id)).toBe(a);
  now += SESSION_IDLE_MS + 1;
  expect(sessions.find(b.id)).toBeUndefined();
  sessions.close(a.id);
  expect(sessions.find(a.id)).toBeUndefined();
});

test('the cookie: HttpOnly, SameSite=Strict, Path=/, named after the port; read back from a Cookie header', () => {
  const sessions = new ConsoleSessions();
  const session = sessions.open();
  const name = cookieName('127.0.0.1:8470');
  expect(name).toBe('pgferry_console_8470');
  expect(sessionCookie(name, session)).toBe(
    `pgferry_console_8470=${session.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`,
  );
  expect(sessionCookie(name, undefined)).toMatch(
    /^pgferry_console_8470=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0$/,
  );
  expect(cookieValue(`a=1; ${name}=${session.id}; b=2`, name)).toBe(session.id);
  expect(cookieValue('pgferry_console_1=x', name)).toBeUndefined();
});
