/**
 * `pgferry serve --webhook`'s deliveries (cli/webhook.ts) over real HTTP to a local receiver:
 * each is signed in `Pgferry-Signature` (HMAC-SHA256 of `<t>.<body>`), which a receiver with the
 * secret verifies and one without cannot forge; a changed body, another secret or an old `t`
 * fail; a retry is signed afresh.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Run } from '../../../api/runs';
import { postRunFinished, verifyWebhookSignature, webhookSignature } from '../../../cli/webhook';

const SECRET = 'k3Xq9vR2mT7wZp4sLb8nYc6dHf1gJa5e';
const RUN: Run = {
  id: '20261202T100000Z-3fa9c1',
  kind: 'backup',
  status: 'succeeded',
  database: 'shop',
  startedAt: '2026-12-02T10:00:00.000Z',
  finishedAt: '2026-12-02T10:01:00.000Z',
  result: { id: '20261202T100000Z-3fa9c1', name: 'shop' },
};

let server: Server;
let url: URL;
const received: { headers: IncomingHttpHeaders; body: string }[] = [];
/** The answers the receiver gives, in turn (then 204). */
let answers: number[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.statusCode = answers.shift() ?? 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
});
afterAll(
  () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
);
beforeEach(() => {
  received.length = 0;
  answers = [];
});

test('a delivery is signed: the receiver verifies it with the secret', async () => {
  expect(await postRunFinished(url, RUN, { secret: SECRET })).toBe(true);
  const [{ headers, body }] = received;
  const header = String(headers['pgferry-signature']);
  expect(header).toMatch(/^t=\d{10},v1=[0-9a-f]{64}$/);
  expect(verifyWebhookSignature(header, body, SECRET)).toBe(true);
  // The secret travels in no header and no body.
  expect(JSON.stringify(headers) + body).not.toContain(SECRET);
});

test('a changed body, another secret, a missing or malformed header, an old timestamp: refused', async () => {
  await postRunFinished(url, RUN, { secret: SECRET });
  const [{ headers, body }] = received;
  const header = String(headers['pgferry-signature']);
  expect(verifyWebhookSignature(header, body.replace('succeeded', 'failed'), SECRET)).toBe(false);
  expect(verifyWebhookSignature(header, body, 'another-secret-of-32-characters!')).toBe(false);
  expect(verifyWebhookSignature(undefined, body, SECRET)).toBe(false);
  expect(verifyWebhookSignature('v1=00', body, SECRET)).toBe(false);
  const sent = Number(/t=(\d+)/.exec(header)?.[1]) * 1000;
  expect(verifyWebhookSignature(header, body, SECRET, { now: new Date(sent + 299_000) })).toBe(true);
  expect(verifyWebhookSignature(header, body, SECRET, { now: new Date(sent + 301_000) })).toBe(false);
});

test('the signature is HMAC-SHA256 of "<t>.<body>", as a receiver recomputes it', () => {
  const body = '{"a":1}';
  const expected = createHmac('sha256', SECRET).update(`1796205600.${body}`).digest('hex');
  expect(webhookSignature(SECRET, body, new Date(1796205600_000))).toBe(`t=1796205600,v1=${expected}`);
});

test('a retry is signed afresh, with its own time', async () => {
  answers = [503];
  let clock = Date.parse('2026-12-02T10:00:00Z');
  const now = () => {
    clock += 60_000;
    return new Date(clock);
  };
  expect(await postRunFinished(url, RUN, { secret: SECRET, now, firstDelayMs: 1 })).toBe(true);
  const [first, second] = received.map((r) => String(r.headers['pgferry-signature']));
  expect(first).not.toBe(second);
  expect(verifyWebhookSignature(second, received[1].body, SECRET, { now: new Date(clock) })).toBe(true);
});

test('without a secret a delivery carries no signature', async () => {
  await postRunFinished(url, RUN);
  expect(received[0].headers['pgferry-signature']).toBeUndefined();
});
