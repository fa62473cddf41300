/**
 * The web console of `pgferry serve` (issue 15): the page at `/` and its files, sign-in, and the
 * gate every request passes — a bearer token as before, or a console session whose
 * state-changing requests carry the session's CSRF token from the server's own origin. The page
 * reads the catalog and starts runs through the HTTP API itself (api/app.ts), plus two small
 * read-only routes of its own here (`/console/api/…`): a summary per catalog name for the first
 * paint, and one name's backups without their manifests' table lists.
 *
 * Nothing the page receives holds a password or a token but its own CSRF token: the catalog's
 * manifests record host, port and user only, runs their result documents, never the request.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Context } from 'hono';
import { Hono } from 'hono';
import { type ListedBackup, listedBackups } from '../../core/catalog-json';
import type { BackupStore } from '../../core/store';
import type { ConsoleBackupRow, ConsoleDatabase } from './page/shapes';
import {
  type ConsoleSession,
  type ConsoleSessions,
  CSRF_HEADER,
  cookieName,
  cookieValue,
  sameSecret,
  sessionCookie,
} from './sessions';

/** The header a `clean` restore from the console names its target database in (URI-encoded). */
export const CONFIRM_HEADER = 'x-pgferry-confirm';

/** The newest backup older than this shows as stale (a daily schedule, with two hours to spare). */
export const STALE_AFTER_SECONDS = 26 * 60 * 60;

/** Where the page's files are: dist/cli/console/page, written by the build. */
const PAGE_DIR = path.join(__dirname, 'page');

const STATIC_TYPES: Record<string, string> = {
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};

/** Served with every console page: no script, style or connection but the server's own. */
const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  // Not `no-referrer`: with it a form's POST carries `Origin: null`, which the origin check refuses.
  'Referrer-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

export interface ConsoleDeps {
  sessions: ConsoleSessions;
  store: BackupStore;
  /** Whether `text` is the API token (the sign-in form's alternative to a link). */
  isApiToken: (text: string) => boolean;
}

function tierOf(backup: ListedBackup): string {
  const retention = backup.catalog.retention;
  if (!retention) return '-';
  if (retention.afterNow) return 'after now';
  if (retention.pinned) return 'pinned';
  if (retention.tier) return retention.tier;
  return retention.keep ? 'kept' : 'expired';
}

export function backupRow(backup: ListedBackup): ConsoleBackupRow {
  return {
    id: backup.id,
    database: backup.catalog.name,
    startedAt: backup.startedAt,
    finishedAt: backup.finishedAt,
    durationSeconds: backup.durationSeconds,
    storedBytes: backup.catalog.storedBytes,
    uncompressedBytes: backup.uncompressedBytes,
    serverVersion: backup.server.version,
    tier: tierOf(backup),
    origin: backup.catalog.origin,
    verification: backup.catalog.verification,
    setId: backup.setId ?? null,
  };
}

/** The summary the page's first paint needs: per catalog name, counts and the newest backups. */
export async function consoleSummary(store: BackupStore, now: Date) {
  const { backups, unreadable } = await listedBackups(store, {}, now);
  const byName = new Map<string, ConsoleDatabase>();
  const entry = (name: string) => {
    let db = byName.get(name);
    if (!db) {
      db = { database: name, backups: 0, storedBytes: 0, newest: null, newestVerified: null, unreadable: 0 };
      byName.set(name, db);
    }
    return db;
  };
  // Newest first: the first of a name is its newest, the first passed its newest verified.
  for (const backup of backups) {
    const db = entry(backup.catalog.name);
    db.backups += 1;
    db.storedBytes += backup.catalog.storedBytes;
    db.newest ??= backupRow(backup);
    const verification = backup.catalog.verification;
    if (!db.newestVerified && verification?.status === 'passed') {
      db.newestVerified = { id: backup.id, startedAt: backup.startedAt, verifiedAt: verification.finishedAt };
    }
  }
  for (const folder of unreadable) entry(folder.database).unreadable += 1;
  return {
    store: store.url,
    now: now.toISOString(),
    staleAfterSeconds: STALE_AFTER_SECONDS,
    databases: [...byName.values()].sort((a, b) => a.database.localeCompare(b.database)),
  };
}

/** How long a summary is answered from memory before the store is read again. */
export const SUMMARY_FRESH_MS = 10_000;

/**
 * The summary, read from the store at most every SUMMARY_FRESH_MS (reading 2,000 manifests takes
 * a second or more) and at once after `invalidate()` (a run ended). Read ahead when `serve`
 * starts, so that the first page does not wait for it.
 */
export class SummaryCache {
  private cached: { at: number; value: Promise<Awaited<ReturnType<typeof consoleSummary>>> } | undefined;

  constructor(
    private readonly store: BackupStore,
    private readonly now: () => number = Date.now,
  ) {}

  get() {
    const now = this.now();
    if (!this.cached || now - this.cached.at > SUMMARY_FRESH_MS) {
      const value = consoleSummary(this.store, new Date(now));
      const entry = { at: now, value };
      this.cached = entry;
      // A failed read is not kept: the next request reads again.
      value.catch(() => {
        if (this.cached === entry) this.cached = undefined;
      });
    }
    return this.cached.value;
  }

  invalidate(): void {
    this.cached = undefined;
  }
}

/** The console's own routes: the page, its files, sign-in and sign-out, and its two reads. */
export function createConsole(deps: ConsoleDeps & { summaries: SummaryCache }): Hono {
  const { sessions, store, summaries } = deps;
  const files = new Map<string, string>();
  const file = (name: string) => {
    let text = files.get(name);
    if (text === undefined) {
      text = readFileSync(path.join(PAGE_DIR, name), 'utf8');
      files.set(name, text);
    }
    return text;
  };
  const app = new Hono();

  const signedIn = (c: Context, session: ConsoleSession) => {
    c.header('Set-Cookie', sessionCookie(cookieName(c.req.header('host')), session));
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
    return c.redirect('/', 303);
  };
  const signInPage = (c: Context, status: 200 | 403, problem?: string) => {
    const html = file('signin.html').replace(
      '<!--problem-->',
      problem ? `<p class="problem" role="alert">${escapeHtml(problem)}</p>` : '',
    );
    return c.html(html, status, PAGE_HEADERS);
  };

  app.get('/', (c) => {
    const session = sessionOf(c, sessions);
    if (!session) return signInPage(c, 200);
    return c.html(file('index.html').replace('{{csrf}}', session.csrf), 200, PAGE_HEADERS);
  });
  // The link `serve` prints: a one-time code, spent here; the redirect takes it out of the address bar.
  app.get('/signin', (c) => {
    const session = sessions.redeem(c.req.query('code'));
    if (!session) {
      return signInPage(
        c,
        403,
        'This sign-in link was already used or is not valid: sign in with the API token.',
      );
    }
    return signedIn(c, session);
  });
  app.post('/signin', async (c) => {
    if (!sameOrigin(c)) return signInPage(c, 403, 'Sign in from this server’s own page.');
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const token = typeof form.token === 'string' ? form.token.trim() : '';
    if (!deps.isApiToken(token)) return signInPage(c, 403, 'That is not the API token.');
    return signedIn(c, sessions.open());
  });
  app.post('/signout', (c) => {
    if (!sameOrigin(c)) return signInPage(c, 403, 'Sign out from this server’s own page.');
    const session = sessionOf(c, sessions);
    if (session) sessions.close(session.id);
    c.header('Set-Cookie', sessionCookie(cookieName(c.req.header('host')), undefined));
    return c.redirect('/', 303);
  });
  app.get('/favicon.ico', (c) => c.body(null, 204));
  app.get('/console/:file', (c) => {
    const name = c.req.param('file');
    const type = STATIC_TYPES[name];
    if (!type) return c.json({ error: 'NotFound', message: `no console file ${name}` }, 404);
    return c.body(file(name), 200, { ...PAGE_HEADERS, 'Content-Type': type, 'Cache-Control': 'no-cache' });
  });

  app.get('/console/api/summary', async (c) => c.json(await summaries.get()));
  app.get('/console/api/backups', async (c) => {
    const database = c.req.query('database');
    if (!database) {
      return c.json({ error: 'InvalidRequest', message: 'name the database: ?database=<name>' }, 400);
    }
    const { backups } = await listedBackups(store, { database }, new Date());
    return c.json({ database, backups: backups.map(backupRow) });
  });
  return app;
}

/** The paths anyone may open: the page (a sign-in form without a session), its files, sign-in. */
function isPublic(method: string, pathName: string): boolean {
  if (method === 'GET' && (pathName === '/' || pathName === '/signin' || pathName === '/favicon.ico'))
    return true;
  if (method === 'GET' && /^\/console\/[a-z.]+$/.test(pathName)) return true;
  return method === 'POST' && (pathName === '/signin' || pathName === '/signout');
}

/** The session the request's cookie names, if it is live. */
function sessionOf(c: Context, sessions: ConsoleSessions): ConsoleSession | undefined {
  return sessions.find(cookieValue(c.req.header('cookie'), cookieName(c.req.header('host'))));
}

/** An `Origin` (when the browser sends one) and `Sec-Fetch-Site` that say the request is the server's own page's. */
function sameOrigin(c: Context): boolean {
  const origin = c.req.header('origin');
  if (origin !== undefined && origin !== `http://${c.req.header('host')}`) return false;
  const site = c.req.header('sec-fetch-site');
  return site === undefined || site === 'same-origin' || site === 'none';
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The gate of a request that carries no valid bearer token: undefined to let it through (a public
 * path, or a session's request that passes the checks), else the refusal — 401 without a session
 * (as the API answered before the console), 403 for an ended session, a missing or wrong CSRF
 * token or another origin, 400 for a `clean` restore without its target's name typed.
 */
export async function consoleGate(c: Context, sessions: ConsoleSessions): Promise<Response | undefined> {
  if (isPublic(c.req.method, c.req.path)) return undefined;
  const cookie = cookieValue(c.req.header('cookie'), cookieName(c.req.header('host')));
  const session = sessions.find(cookie);
  if (!session) {
    if (cookie !== undefined && cookie !== '') {
      return c.json({ error: 'Forbidden', message: 'the console session has ended: sign in again' }, 403);
    }
    c.header('WWW-Authenticate', 'Bearer realm="pgferry"');
    return c.json(
      { error: 'Unauthorized', message: 'send the API token as Authorization: Bearer <token>' },
      401,
    );
  }
  if (SAFE_METHODS.has(c.req.method)) return undefined;
  if (!sameOrigin(c)) {
    return c.json({ error: 'Forbidden', message: 'a console request must come from its own page' }, 403);
  }
  if (!sameSecret(c.req.header(CSRF_HEADER), session.csrf)) {
    return c.json(
      { error: 'Forbidden', message: 'the console request lacks its CSRF token: reload the page' },
      403,
    );
  }
  if (c.req.method === 'POST' && c.req.path === '/v1/restores') {
    const body = (await c.req.json().catch(() => undefined)) as
      | { mode?: unknown; target?: { database?: unknown } }
      | undefined;
    const target = body?.target?.database;
    if (
      body?.mode === 'clean' &&
      (typeof target !== 'string' || confirmed(c.req.header(CONFIRM_HEADER)) !== target)
    ) {
      const message = `a clean restore replaces the target database: type its name${typeof target === 'string' ? ` (${target})` : ''} to confirm`;
      return c.json({ error: 'InvalidRequest', message, issues: [{ path: 'confirm', message }] }, 400);
    }
  }
  return undefined;
}

/** The typed name, sent URI-encoded (a header carries only Latin-1; a database name may be any text). */
function confirmed(header: string | undefined): string | undefined {
  try {
    return header === undefined ? undefined : decodeURIComponent(header);
  } catch {
    return undefined;
  }
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch,
  );
}
