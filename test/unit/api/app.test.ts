/**
 * The HTTP application against a fake run host (the real host and the workflows are proven over
 * HTTP in test/e2e/serve.test.ts): what it validates, what it hands the host, what it answers.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createApi } from '../../../api/app';
import { renderOpenApiDocument } from '../../../api/openapi';
import {
  encodeRunCursor,
  IdempotencyConflict,
  type Run,
  type RunFilter,
  type RunHost,
  type StartRun,
} from '../../../api/runs';
import { LocalStore } from '../../../core/store';

/** A run host that records what it is asked and answers from memory. */
class FakeRuns implements RunHost {
  started: StartRun[] = [];
  cancelled: string[] = [];
  listed: RunFilter[] = [];
  runs = new Map<string, Run>();
  replay?: Run;
  conflict = false;

  async start(run: StartRun) {
    if (this.conflict) throw new IdempotencyConflict(run.idempotencyKey ?? '');
    if (this.replay) return { run: this.replay, created: false };
    this.started.push(run);
    const started: Run = {
      id: `run-${this.started.length}`,
      kind: run.kind,
      status: 'running',
      startedAt: '2026-12-02T00:00:00.000Z',
    };
    this.runs.set(started.id, started);
    return { run: started, created: true };
  }
  async get(id: string) {
    return this.runs.get(id);
  }
  async list(filter: RunFilter) {
    this.listed.push(filter);
    return [...this.runs.values()];
  }
  async cancel(id: string) {
    this.cancelled.push(id);
    return this.runs.get(id);
  }
}

/** A response's JSON, read as the loosely typed document the assertions look into. */
interface Json {
  [key: string]: Json & string & Json[];
}
const json = async (response: Response) => (await response.json()) as Json;

const source = { host: 'db.example.com', port: 5432, user: 'app', database: 'shop' };
let dir: string;
let runs: FakeRuns;
let app: ReturnType<typeof createApi>;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-api-'));
  runs = new FakeRuns();
  app = createApi({ runs, store: new LocalStore(dir) });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  app.request(url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  });

describe('starting a run', () => {
  test('202 with Location and {id, kind, status, links}; the host gets the body with its defaults, no store', async () => {
    const response = await post('/v1/backups', { source });
    expect(response.status).toBe(202);
    expect(response.headers.get('location')).toBe('/v1/runs/run-1');
    expect(await json(response)).toEqual({
      id: 'run-1',
      kind: 'backup',
      status: 'running',
      links: { self: '/v1/runs/run-1' },
    });
    expect(runs.started).toEqual([
      {
        kind: 'backup',
        idempotencyKey: undefined,
        request: {
          source: { ...source, sslmode: 'prefer' },
          compression: { codec: 'zstd', level: 1 },
          withRolePasswords: false,
        },
      },
    ]);
  });

  test.each([
    ['/v1/restores', 'restore', { backup: 'latest', name: 'shop', target: source }],
    ['/v1/verifications', 'verify', { backup: 'latest', name: 'shop' }],
    ['/v1/migrations', 'migrate', { source, target: { ...source, host: 'new.example.com' } }],
  ])('POST %s starts a %s', async (url, kind, body) => {
    const response = await post(url, body);
    expect(response.status).toBe(202);
    expect(runs.started[0].kind).toBe(kind);
  });

  test('a base path prefixes Location and links (API Gateway stage)', async () => {
    app = createApi({ runs, store: new LocalStore(dir), basePath: '/prod/' });
    const response = await post('/v1/backups', { source });
    expect(response.headers.get('location')).toBe('/prod/v1/runs/run-1');
    expect((await json(response)).links.self).toBe('/prod/v1/runs/run-1');
  });

  test("400 names every field's problem, and nothing starts", async () => {
    const response = await post('/v1/backups', {
      source: { host: '', port: 70000 },
      compression: 'fast',
      extra: 1,
    });
    expect(response.status).toBe(400);
    const body = await json(response);
    expect(body.error).toBe('InvalidRequest');
    expect(body.issues.map((i) => i.path).sort()).toEqual(
      ['', 'compression', 'source.database', 'source.host', 'source.port', 'source.user'].sort(),
    );
    expect(body.message).toContain('source.port');
    expect(runs.started).toEqual([]);
  });

  test.each([
    ['a store (the server has one)', '/v1/backups', { source, store: 'file:///etc' }],
    ['a backup id (the workflow chooses it)', '/v1/backups', { source, backupId: '20261202T000000Z-abcdef' }],
    ['a password in the connection', '/v1/backups', { source: { ...source, password: 'secret' } }],
    [
      'a cutover shell command',
      '/v1/migrations',
      { source, target: source, cutover: { command: 'rm -rf /' } },
    ],
    ['a malformed backup reference', '/v1/restores', { backup: 'yesterday', target: source }],
  ])('400 for %s', async (_what, url, body) => {
    const response = await post(url, body);
    expect(response.status).toBe(400);
    expect(runs.started).toEqual([]);
  });

  test('400 for a body that is not JSON, and for no JSON content type', async () => {
    const bad = await app.request('/v1/backups', {
      method: 'POST',
      body: '{',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error).toBe('InvalidRequest');
    const untyped = await app.request('/v1/backups', { method: 'POST', body: JSON.stringify({ source }) });
    expect(untyped.status).toBeGreaterThanOrEqual(400);
    expect(untyped.status).toBeLessThan(500);
    expect(runs.started).toEqual([]);
  });
});

describe('Idempotency-Key', () => {
  test('is handed to the host', async () => {
    await post('/v1/backups', { source }, { 'Idempotency-Key': 'deploy-1234_a' });
    expect(runs.started[0].idempotencyKey).toBe('deploy-1234_a');
  });

  test.each([
    ['empty', ''],
    ['81 characters', 'k'.repeat(81)],
    ['a space', 'deploy 1'],
    ['a colon', 'deploy:1'],
  ])('400 for a key with %s (Step Functions execution names)', async (_what, key) => {
    const response = await post('/v1/backups', { source }, { 'Idempotency-Key': key });
    expect(response.status).toBe(400);
    expect(runs.started).toEqual([]);
  });

  test('a replay answers with the first run and says so', async () => {
    runs.replay = {
      id: 'run-first',
      kind: 'backup',
      status: 'succeeded',
      startedAt: '2026-12-01T00:00:00.000Z',
    };
    const response = await post('/v1/backups', { source }, { 'Idempotency-Key': 'k1' });
    expect(response.status).toBe(202);
    expect(response.headers.get('idempotent-replayed')).toBe('true');
    expect(response.headers.get('location')).toBe('/v1/runs/run-first');
    expect((await json(response)).status).toBe('succeeded');
  });

  test('409 when the host says the key was used for another request', async () => {
    runs.conflict = true;
    const response = await post('/v1/backups', { source }, { 'Idempotency-Key': 'k1' });
    expect(response.status).toBe(409);
    expect((await json(response)).error).toBe('IdempotencyConflict');
  });
});

describe('runs', () => {
  const finished: Run = {
    id: 'run-done',
    kind: 'backup',
    status: 'succeeded',
    startedAt: '2026-12-01T00:00:00.000Z',
    finishedAt: '2026-12-01T00:01:00.000Z',
    result: { id: 'x' },
  };

  test('GET a run; 404 for an unknown one', async () => {
    runs.runs.set(finished.id, finished);
    expect(await json(await app.request('/v1/runs/run-done'))).toEqual(finished);
    const missing = await app.request('/v1/runs/run-nope');
    expect(missing.status).toBe(404);
    expect((await json(missing)).error).toBe('NotFound');
  });

  test('GET a cancelled run whose cleanup ran apart from it: what that cleanup did and left, as the host gives it', async () => {
    const cancelled: Run = {
      id: 'restore-drill-7',
      kind: 'restore',
      status: 'cancelled',
      startedAt: '2026-12-01T00:00:00.000Z',
      finishedAt: '2026-12-01T00:01:00.000Z',
      error: { error: 'pgferry.Cancelled', cause: 'cancelled through the API (DELETE /v1/runs/{id})' },
      cleanup: {
        notes: ['the database shop_drill_restoring, … was dropped'],
        left: ['the database x is left in place (…): remove it with DROP DATABASE x WITH (FORCE);'],
        error: { error: 'Lambda.Unknown', cause: 'timed out' },
      },
    };
    runs.runs.set(cancelled.id, cancelled);
    expect(await json(await app.request('/v1/runs/restore-drill-7'))).toEqual(cancelled);
  });

  test('DELETE cancels a running run (202), refuses an ended one (409), 404 for none', async () => {
    await post('/v1/backups', { source });
    expect((await app.request('/v1/runs/run-1', { method: 'DELETE' })).status).toBe(202);
    expect(runs.cancelled).toEqual(['run-1']);
    runs.runs.set(finished.id, finished);
    const ended = await app.request('/v1/runs/run-done', { method: 'DELETE' });
    expect(ended.status).toBe(409);
    expect((await json(ended)).error).toBe('RunFinished');
    expect((await app.request('/v1/runs/run-nope', { method: 'DELETE' })).status).toBe(404);
    expect(runs.cancelled).toEqual(['run-1']);
  });

  test('the list passes its filter and leaves results out', async () => {
    runs.runs.set(finished.id, finished);
    const response = await app.request('/v1/runs?kind=backup&status=succeeded&since=2026-12-01T00:00:00Z');
    expect(runs.listed).toEqual([{ kind: 'backup', status: 'succeeded', since: '2026-12-01T00:00:00Z' }]);
    const { result: _, ...withoutResult } = finished;
    expect(await json(response)).toEqual({ runs: [withoutResult] });
  });

  test('the list pages: limit and next are passed, and the page’s next returned', async () => {
    runs.runs.set(finished.id, finished);
    const next = encodeRunCursor(finished);
    const response = await app.request(`/v1/runs?limit=1&next=${next}`);
    expect(response.status).toBe(200);
    expect(runs.listed).toEqual([{ limit: 1, next }]);
  });

  test.each([
    'kind=dump',
    'status=done',
    'since=yesterday',
    'limit=0',
    'limit=1001',
    'limit=ten',
    'next=not-a-token',
  ])('400 for ?%s', async (query) => {
    expect((await app.request(`/v1/runs?${query}`)).status).toBe(400);
  });
});

describe('the catalog', () => {
  test('an empty store: no backups, no databases in the status', async () => {
    expect(await json(await app.request('/v1/backups'))).toEqual({ backups: [], unreadable: [] });
    const status = await json(await app.request('/v1/status'));
    expect(status).toEqual({ store: new LocalStore(dir).url, now: expect.any(String), databases: [] });
  });

  test('404 for a backup that is not there, 400 for a malformed id', async () => {
    expect((await app.request('/v1/backups/shop/20261202T000000Z-abcdef')).status).toBe(404);
    expect((await app.request('/v1/backups/shop/not-an-id')).status).toBe(400);
  });

  test('400 for a malformed time or duration', async () => {
    expect((await app.request('/v1/backups?since=last-week')).status).toBe(400);
    expect((await app.request('/v1/status?maxAge=2days')).status).toBe(400);
  });
});

describe('the OpenAPI document', () => {
  test('is served, OpenAPI 3.1, with every route', async () => {
    const document = await json(await app.request('/openapi.json'));
    expect(document.openapi).toBe('3.1.0');
    expect(Object.keys(document.paths).sort()).toEqual(
      [
        '/v1/backups',
        '/v1/backups/{database}/{id}',
        '/v1/migrations',
        '/v1/restores',
        '/v1/runs',
        '/v1/runs/{id}',
        '/v1/status',
        '/v1/verifications',
      ].sort(),
    );
    expect(document.components.schemas.BackupBody.properties.store).toBeUndefined();
    expect(document.components.schemas.Run.properties.cleanup).toEqual({
      $ref: '#/components/schemas/RunCleanup',
    });
    expect(document.components.schemas.RunCleanup.required).toEqual(['notes', 'left']);
    expect(document.components.schemas.BackupBody.properties.source.required).toEqual(
      expect.arrayContaining(['host', 'port', 'database', 'user']),
    );
  });

  test('docs/openapi.json is current (npm run docs regenerates it)', () => {
    const published = readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'openapi.json'), 'utf8');
    expect(JSON.parse(published)).toEqual(JSON.parse(renderOpenApiDocument()));
  });
});

test('an unknown route is a JSON 404', async () => {
  const response = await app.request('/v2/things');
  expect(response.status).toBe(404);
  expect((await json(response)).error).toBe('NotFound');
});
