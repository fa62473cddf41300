/**
 * `pgferry serve --webhook <url>`: when a run ends, its run-finished event (api/events.ts, the
 * same detail-type and detail EventBridge carries on AWS) is POSTed to the URL, retried with
 * backoff until it is accepted or the attempts run out. A webhook that fails is logged; it never
 * changes the run.
 *
 * Each delivery is signed, as Stripe and GitHub sign theirs: `Pgferry-Signature: t=<unix
 * seconds>,v1=<hex>`, the hex an HMAC-SHA256, keyed with the webhook secret, of `<t>.<body>` (the
 * body's exact bytes). A receiver recomputes it, compares in constant time and refuses a `t` too
 * far from its clock (`verifyWebhookSignature`), so that nobody without the secret can post it a
 * run, or replay an old delivery.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type RunFinishedEvent, runFinishedEvent } from '../api/events';
import type { Run } from '../api/runs';
import { errorMessage, PgferryError } from '../core/errors';

/** The body POSTed: EventBridge's envelope fields a consumer reads (`source`, `detail-type`, `time`, `detail`). */
export interface WebhookBody {
  source: RunFinishedEvent['source'];
  'detail-type': string;
  time: string;
  detail: RunFinishedEvent['detail'];
}

/** The header that carries a delivery's signature. */
export const SIGNATURE_HEADER = 'Pgferry-Signature';

/** The variable that gives the webhook secret instead of its file. */
export const WEBHOOK_SECRET_ENV = 'PGFERRY_WEBHOOK_SECRET';

/** How far a delivery's `t` may be from the receiver's clock by default: 5 minutes. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export function webhookSignature(secret: string, body: string, now: Date = new Date()): string {
  const t = Math.floor(now.getTime() / 1000);
  return `t=${t},v1=${hmac(secret, `${t}.${body}`)}`;
}

function hmac(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}

/**
 * What a receiver checks: the header's `v1` (any of them, for a secret being rotated) is the
 * HMAC of `<t>.<body>` under `secret`, compared in constant time, and `t` is within
 * `toleranceSeconds` of `now`. `body` is the request's raw body, before any JSON parsing.
 */
export function verifyWebhookSignature(
  header: string | undefined,
  body: string,
  secret: string,
  {
    now = new Date(),
    toleranceSeconds = SIGNATURE_TOLERANCE_SECONDS,
  }: { now?: Date; toleranceSeconds?: number } = {},
): boolean {
  const parts = (header ?? '').split(',').map((part) => part.trim().split('='));
  const t = parts.find(([k]) => k === 't')?.[1];
  const signatures = parts.filter(([k, v]) => k === 'v1' && v !== undefined).map(([, v]) => v);
  if (!t || !/^\d+$/.test(t) || signatures.length === 0) return false;
  if (Math.abs(now.getTime() / 1000 - Number(t)) > toleranceSeconds) return false;
  const expected = Buffer.from(hmac(secret, `${t}.${body}`), 'hex');
  return signatures.some((v) => {
    const given = Buffer.from(v, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export interface WebhookOptions {
  /** The secret each delivery is signed with (`Pgferry-Signature`); absent: unsigned. */
  secret?: string;
  /** The clock the signature's `t` is read from. @default Date */
  now?: () => Date;
  /** @default 6 (about half a minute of retries) */
  attempts?: number;
  /** The first retry's delay, doubled for each next one. @default 1000 */
  firstDelayMs?: number;
  /** Each attempt's limit. @default 10000 */
  timeoutMs?: number;
  /** Told of a delivery that failed for good (and of each failed attempt's reason). */
  onFailure?: (line: string) => void;
}

/** The URL `--webhook` gives: http or https, nothing else. */
export function parseWebhookUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PgferryError('InvalidInput', `--webhook is not a URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PgferryError(
      'InvalidInput',
      `--webhook must be an http:// or https:// URL (got ${url.protocol})`,
    );
  }
  return url;
}

/** The webhook's body for a finished run. */
export function webhookBody(run: Run, now: Date = new Date()): WebhookBody {
  const event = runFinishedEvent(run);
  return {
    source: event.source,
    'detail-type': event.detailType,
    time: now.toISOString(),
    detail: event.detail,
  };
}

/**
 * Posts `run`'s event to `url`: a 2xx answer delivers it; a network error, a timeout, 408, 429 or
 * a 5xx is retried after 1 s, 2 s, 4 s, …; another 4xx is not (the receiver refuses it). Resolves
 * whether or not it was delivered.
 */
export async function postRunFinished(url: URL, run: Run, options: WebhookOptions = {}): Promise<boolean> {
  const attempts = options.attempts ?? 6;
  const body = JSON.stringify(webhookBody(run));
  let delay = options.firstDelayMs ?? 1000;
  let problem = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'pgferry',
          // Signed afresh for each attempt: a retry is not refused as too old.
          ...(options.secret === undefined
            ? {}
            : { [SIGNATURE_HEADER]: webhookSignature(options.secret, body, options.now?.() ?? new Date()) }),
        },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      await response.body?.cancel();
      if (response.ok) return true;
      problem = `HTTP ${response.status}`;
      if (response.status < 500 && response.status !== 408 && response.status !== 429) break;
    } catch (err) {
      problem = errorMessage(err);
    }
    if (attempt < attempts) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay *= 2;
    }
  }
  options.onFailure?.(`webhook for run ${run.id} not delivered to ${url.origin}: ${problem}`);
  return false;
}
