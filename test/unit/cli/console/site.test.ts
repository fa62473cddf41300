/**
 * The console's gate without a server: a Hono application in front of a stand-in route, as
 * `pgferry serve` puts the gate in front of the API (test/e2e/console.test.ts has the real one).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Hono } from 'hono';
import { ConsoleSessions } from '../../../../cli/console/sessions';
import { consoleGate, SUMMARY_FRESH_MS, SummaryCache } from '../../../../cli/console/site';
import { LocalStore } from '../../../../core/store';
import { writeCatalogStore } from '../../../../scripts/support/catalog-store';

const sessions = new ConsoleSessions();
const session = sessions.open();
const app = new Hono();
app.use('*', async (c, next) => (await consoleGate(c, sessions)) ?? next());
app.all('/v1/*', (c) => c.json({ reached: true }, 202));
app.get('/', (c) => c.text('page'));

const host = '127.0.0.1:8470';
const cookie = `pgferry_console_8470=${session.id}`;
const restore = (mode: string, targetDatabase = 'app') =>
  JSON.stringify({
    backup: 'latest',
    name: 'app',
    mode,
    target: { host: 'h', port: 5432, user: 'u', database: targetDatabase },
  });
const send = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string }) =>
  app.request(`http://${host}${path}`, {
    method: init.method ?? 'POST',
    headers: { host, 'content-type': 'application/json', ...init.headers },
    body: init.body,
  });

test('without a session: 401 as before (no cookie), 403 for an ended or forged one; the page is public', async () => {
  expect((await send('/v1/verifications', { body: '{}' })).status).toBe(401);
  expect(
    (await send('/v1/verifications', { body: '{}', headers: { cookie: 'pgferry_console_8470=forged' } }))
      .status,
  ).toBe(403);
  expect((await send('/', { method: 'GET' })).status).toBe(200);
});

test('a session reads without its CSRF token; changes nothing without it, or from another origin', async () => {
  expect((await send('/v1/runs', { method: 'GET', headers: { cookie } })).status).toBe(202);
  expect((await send('/v1/verifications', { body: '{}', headers: { cookie } })).status).toBe(403);
  expect(
    (await send('/v1/runs/x', { method: 'DELETE', headers: { cookie, 'x-csrf-token': 'wrong' } })).status,
  ).toBe(403);
  const ok = { cookie, 'x-csrf-token': session.csrf };
  expect(
    (await send('/v1/verifications', { body: '{}', headers: { ...ok, origin: 'http://evil.example' } }))
      .status,
  ).toBe(403);
  expect(
    (await send('/v1/verifications', { body: '{}', headers: { ...ok, 'sec-fetch-site': 'cross-site' } }))
      .status,
  ).toBe(403);
  expect(
    (await send('/v1/verifications', { body: '{}', headers: { ...ok, origin: `http://${host}` } })).status,
  ).toBe(202);
});

test('a clean restore from a session needs the target database typed, URI-encoded; a create restore does not', async () => {
  const ok = { cookie, 'x-csrf-token': session.csrf };
  const refused = await send('/v1/restores', { body: restore('clean'), headers: ok });
  expect(refused.status).toBe(400);
  expect(await refused.json()).toMatchObject({
    issues: [{ path: 'confirm', message: expect.stringContaining('app') }],
  });
  expect(
    (await send('/v1/restores', { body: restore('clean'), headers: { ...ok, 'x-pgferry-confirm': 'other' } }))
      .status,
  ).toBe(400);
  expect(
    (await send('/v1/restores', { body: restore('clean'), headers: { ...ok, 'x-pgferry-confirm': 'app' } }))
      .status,
  ).toBe(202);
  const name = 'zürich app';
  expect(
    (
      await send('/v1/restores', {
        body: restore('clean', name),
        headers: { ...ok, 'x-pgferry-confirm': encodeURIComponent(name) },
      })
    ).status,
  ).toBe(202);
  expect((await send('/v1/restores', { body: restore('create'), headers: ok })).status).toBe(202);
});

test('the summary is kept for SUMMARY_FRESH_MS, read again after that or once invalidated', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-console-summary-'));
  try {
    const store = new LocalStore(dir);
    await writeCatalogStore(store, 4, 2);
    let now = Date.parse('2026-12-02T10:00:00Z');
    const cache = new SummaryCache(store, () => now);
    const count = async () => (await cache.get()).databases.map((db) => db.backups);
    expect(await count()).toEqual([2, 2]);
    await writeCatalogStore(store, 2, 1);
    expect(await count()).toEqual([2, 2]);
    now += SUMMARY_FRESH_MS + 1;
    expect(await count()).toEqual([4, 2]);
    await writeCatalogStore(store, 2, 1);
    cache.invalidate();
    expect(await count()).toEqual([6, 2]);
    // Nothing of a connection but host, port and user: no password field at all.
    expect(JSON.stringify(await cache.get())).not.toMatch(/password/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
