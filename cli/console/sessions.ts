/**
 * The web console's sign-in and sessions (`pgferry serve`): a one-time sign-in link, a session
 * cookie, and the session's CSRF token. All in memory: a session ends with the server.
 *
 * - The link `serve` prints carries a one-time code (not the API token): opening it sets the
 *   session cookie and redirects to `/`, so the code leaves the address bar; it works once.
 * - The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends
 *   it) and `Path=/`, named after the server's port (two servers on one machine keep two sessions).
 * - Every state-changing request of a session carries its CSRF token in `X-CSRF-Token` (the page
 *   reads it from a meta tag) and, when the browser sends one, an `Origin` that is the server's own.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** How long a session lasts without being used. */
export const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;

/** The header a page sends its CSRF token in. */
export const CSRF_HEADER = 'x-csrf-token';

export interface ConsoleSession {
  /** The cookie's value. */
  id: string;
  /** The page's CSRF token (its meta tag), sent back in `X-CSRF-Token`. */
  csrf: string;
  lastUsed: number;
}

const secret = () => randomBytes(32).toString('base64url');

/** Constant-time equality of two strings (digests of equal length). */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The sessions of one `serve`, and the one-time codes of its sign-in links. */
export class ConsoleSessions {
  private readonly sessions = new Map<string, ConsoleSession>();
  private readonly codes = new Set<string>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A new one-time sign-in code (the link's `?code=`). */
  newCode(): string {
    const code = secret();
    this.codes.add(code);
    return code;
  }

  /** Spends a one-time code: a new session, or undefined when the code was used or never given. */
  redeem(code: string | undefined): ConsoleSession | undefined {
    if (code === undefined) return undefined;
    for (const known of this.codes) {
      if (sameSecret(code, known)) {
        this.codes.delete(known);
        return this.open();
      }
    }
    return undefined;
  }

  /** A new session (after a valid code, or the API token typed into the sign-in form). */
  open(): ConsoleSession {
    const session = { id: secret(), csrf: secret(), lastUsed: this.now() };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session whose id the cookie holds, touched; undefined when none. */
  find(id: string | undefined): ConsoleSession | undefined {
    if (id === undefined) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.now() - session.lastUsed > SESSION_IDLE_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    session.lastUsed = this.now();
    return session;
  }

  close(id: string): void {
    this.sessions.delete(id);
  }
}

/** The session cookie's name for a server reached at `host` (its `Host` header). */
export function cookieName(host: string | undefined): string {
  const port = /:(\d+)$/.exec(host ?? '')?.[1] ?? '80';
  return `pgferry_console_${port}`;
}

/** A cookie's value from a `Cookie` header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `Set-Cookie` for a session (or, with no session, one that removes the cookie). */
export function sessionCookie(name: string, session: ConsoleSession | undefined): string {
  const value = session ? session.id : '';
  const age = session ? Math.floor(SESSION_IDLE_MS / 1000) : 0;
  return `${name}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${age}`;
}
