/**
 * `pgferry serve --webhook <url>`: when a run ends, its run-finished event (api/events.ts, the
 * same detail-type and detail EventBridge carries on AWS) is POSTed to the URL, retried with
 * backoff until it is accepted or the attempts run out. A webhook that fails is logged; it never
 * changes the run.
 */
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

export interface WebhookOptions {
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
        headers: { 'content-type': 'application/json', 'user-agent': 'pgferry' },
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
