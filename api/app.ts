/**
 * The HTTP API (issue 14): one application, served by `pgferry serve` on one machine and by the
 * API's Lambda behind API Gateway. Routes are written against the `RunHost` port (./runs.ts) and
 * the store; authentication is the host's (a bearer token in `serve`, IAM on API Gateway).
 *
 * Every request body is a workflow's request schema from core/contracts less the store (which is
 * the server's), so a body the API accepts is one the workflow accepts; the OpenAPI document
 * (`GET /openapi.json`, docs/openapi.json) is generated from the same schemas.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ZodError } from 'zod';
import { parseDuration, scanStore } from '../core/catalog';
import {
  BackupDetailSchema,
  backupDetail,
  ListedCatalogSchema,
  listedBackups,
  StatusJsonSchema,
  statusReport,
} from '../core/catalog-json';
import {
  BackupManifestSchema,
  BackupRequestSchema,
  CutoverSchema,
  MigrateReportSchema,
  MigrateRequestSchema,
  RestoreReportSchema,
  RestoreRequestSchema,
  VerifyReportSchema,
  VerifyRequestSchema,
} from '../core/contracts';
import { PgferryError } from '../core/errors';
import { resolveBackup } from '../core/resolve-backup';
import type { BackupStore } from '../core/store';
import { PGFERRY_VERSION } from '../core/version';
import {
  DEFAULT_RUN_LIMIT,
  decodeRunCursor,
  IDEMPOTENCY_KEY_PATTERN,
  IdempotencyConflict,
  MAX_RUN_LIMIT,
  RUN_KINDS,
  RUN_STATUSES,
  type Run,
  type RunHost,
  type RunKind,
} from './runs';

/** What the application needs from its host. */
export interface ApiDeps {
  /** Where runs execute. */
  runs: RunHost;
  /** The server's store: the catalog the API reads, and the store every run's request is given. */
  store: BackupStore;
  /**
   * The path the API is served under, prefixed to `Location` and `links` (API Gateway's stage,
   * `/prod`, where the URL has one).
   * @default ''
   */
  basePath?: string;
  /** Told of every 500: the host logs it (the response says only that it failed). */
  onError?: (err: unknown) => void;
}

// --- the schemas of the wire ------------------------------------------------------------------

/**
 * The request bodies: each workflow's request less what belongs to the server — the store, and a
 * backup's id (the workflow chooses it). A migration's cutover `command` (a shell command the
 * local CLI runs) is not offered over HTTP: a caller of the API gets no shell on the server.
 */
export const REQUEST_BODIES = {
  backup: BackupRequestSchema.omit({ store: true, backupId: true }).openapi('BackupBody'),
  restore: RestoreRequestSchema.omit({ store: true }).openapi('RestoreBody'),
  verify: VerifyRequestSchema.omit({ store: true }).openapi('VerifyBody'),
  migrate: MigrateRequestSchema.omit({ store: true })
    .extend({ cutover: CutoverSchema.omit({ command: true }).optional() })
    .openapi('MigrateBody'),
} as const satisfies Record<RunKind, z.ZodType>;

/** Each kind's collection: `POST /v1/<collection>` starts a run of the kind. */
export const COLLECTIONS: Record<RunKind, string> = {
  backup: 'backups',
  restore: 'restores',
  verify: 'verifications',
  migrate: 'migrations',
};

const ErrorSchema = z
  .object({
    /** A stable code: `InvalidRequest`, `NotFound`, `IdempotencyConflict`, `RunFinished`, `Pgferry.*`, … */
    error: z.string(),
    /** One line that says what to do. */
    message: z.string(),
    /** With `InvalidRequest`: every field's problem. */
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi('Error');

const RunErrorSchema = z.object({ error: z.string(), cause: z.string() });

const RunCleanupSchema = z
  .object({
    notes: z.array(z.string()).openapi({
      description: 'What the cleanup did, one line each (at most 20 lines of 1,000 characters).',
    }),
    left: z.array(z.string()).openapi({
      description:
        'What it found and could not remove, each line naming it and how to remove it (at most 20 lines of 1,000 characters).',
    }),
    error: RunErrorSchema.optional().openapi({
      description: "The cleanup's own failure: what it did not get to is not in `notes` or `left`.",
    }),
  })
  .openapi('RunCleanup', {
    description:
      "What the cleanup of a stopped run did and left, when that cleanup ran apart from the run: on AWS the announcer's, after an execution was cancelled or timed out (the same as its run-finished event's `detail.cleanup`). Absent until that cleanup has ended, and for a run that cleaned up itself (its `error` says what its cleanup did).",
  });

const RunSchema = z
  .object({
    id: z.string(),
    kind: z.enum(RUN_KINDS),
    status: z.enum(RUN_STATUSES),
    database: z
      .string()
      .optional()
      .openapi({ description: 'The catalog name the run is about, when known.' }),
    startedAt: z.string(),
    finishedAt: z.string().optional(),
    state: z.string().optional().openapi({ description: 'The workflow state it is in, or ended in.' }),
    progress: z.unknown().optional().openapi({ description: "The long step's progress while running." }),
    result: z
      .union([BackupManifestSchema, RestoreReportSchema, VerifyReportSchema, MigrateReportSchema])
      .optional()
      .openapi({ description: 'A succeeded run: the manifest (backup) or the stored report.' }),
    error: RunErrorSchema.optional().openapi({ description: 'A failed or cancelled run: why.' }),
    cleanup: RunCleanupSchema.optional(),
  })
  .openapi('Run');

const RunLinksSchema = z.object({ self: z.string() });
const StartedRunSchema = z
  .object({ id: z.string(), kind: z.enum(RUN_KINDS), status: z.enum(RUN_STATUSES), links: RunLinksSchema })
  .openapi('StartedRun');

const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(IDEMPOTENCY_KEY_PATTERN, 'Idempotency-Key must be 1 to 80 of A-Z, a-z, 0-9, _ and -')
    .optional()
    .openapi({
      param: { name: 'idempotency-key', in: 'header' },
      description: 'Makes a retried POST return the first run instead of starting another.',
    }),
});

/** An ISO 8601 time, as `since` and `until` take it. */
const TimeQuery = z.iso.datetime({ offset: true }).optional();

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});
const errors = {
  400: json(ErrorSchema, 'Invalid request: every problem is listed'),
  404: json(ErrorSchema, 'No such resource'),
};

// --- the application ---------------------------------------------------------------------------

/** The API's application: every route, and `GET /openapi.json`. */
export function createApi(deps: ApiDeps): OpenAPIHono {
  const { runs, store } = deps;
  const basePath = (deps.basePath ?? '').replace(/\/+$/, '');
  const app = new OpenAPIHono({
    defaultHook: (result, c) => (result.success ? undefined : invalid(c, result.error)),
  });

  app.onError((err, c) => {
    if (err instanceof HTTPException && err.status < 500) {
      return c.json({ error: 'InvalidRequest', message: err.message }, err.status);
    }
    if (err instanceof PgferryError && err.code === 'InvalidInput') {
      return c.json({ error: 'InvalidRequest', message: err.message }, 400);
    }
    if (err instanceof PgferryError && err.code === 'BackupNotFound') {
      return c.json({ error: 'NotFound', message: err.message }, 404);
    }
    deps.onError?.(err);
    return c.json({ error: 'InternalError', message: 'the server failed to answer: see its log' }, 500);
  });
  app.notFound((c) => c.json({ error: 'NotFound', message: `no route ${c.req.method} ${c.req.path}` }, 404));

  const runPath = (id: string) => `${basePath}/v1/runs/${encodeURIComponent(id)}`;

  for (const kind of RUN_KINDS) {
    const route = createRoute({
      method: 'post',
      path: `/v1/${COLLECTIONS[kind]}`,
      tags: ['runs'],
      summary: `Start a ${kind === 'verify' ? 'verification' : kind === 'migrate' ? 'migration' : kind}`,
      request: {
        headers: IdempotencyHeaders,
        body: { content: { 'application/json': { schema: REQUEST_BODIES[kind] } }, required: true },
      },
      responses: {
        202: {
          ...json(StartedRunSchema, 'Started (or, for a retried Idempotency-Key, the first run)'),
          headers: z.object({ Location: z.string() }),
        },
        400: errors[400],
        409: json(ErrorSchema, 'The Idempotency-Key was used for another request'),
      },
    });
    app.openapi(route, async (c) => {
      const request = c.req.valid('json');
      const { 'idempotency-key': idempotencyKey } = c.req.valid('header');
      try {
        const { run, created } = await runs.start({ kind, request, idempotencyKey });
        c.header('Location', runPath(run.id));
        if (!created) c.header('Idempotent-Replayed', 'true');
        return c.json(
          { id: run.id, kind: run.kind, status: run.status, links: { self: runPath(run.id) } },
          202,
        );
      } catch (err) {
        if (err instanceof IdempotencyConflict) {
          return c.json({ error: 'IdempotencyConflict', message: err.message }, 409);
        }
        throw err;
      }
    });
  }

  const RunIdParams = z.object({
    id: z
      .string()
      .min(1)
      .max(512)
      .openapi({ param: { name: 'id', in: 'path' } }),
  });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/runs/{id}',
      tags: ['runs'],
      summary: 'A run: its status, state, progress, and its result or error',
      request: { params: RunIdParams },
      responses: { 200: json(RunSchema, 'The run'), 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const run = await runs.get(id);
      if (!run) return c.json(noRun(id), 404);
      return c.json(runJson(run), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/runs/{id}',
      tags: ['runs'],
      summary: "Cancel a running run: its workflow's cleanup runs as on any failure",
      request: { params: RunIdParams },
      responses: {
        202: json(RunSchema, 'Cancelling: the run ends `cancelled` once its cleanup is done'),
        404: errors[404],
        409: json(ErrorSchema, 'The run has already ended'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const before = await runs.get(id);
      if (!before) return c.json(noRun(id), 404);
      if (before.status !== 'running') {
        return c.json(
          { error: 'RunFinished', message: `run ${id} has already ended: ${before.status}` },
          409,
        );
      }
      const run = (await runs.cancel(id)) ?? before;
      return c.json(runJson(run), 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/runs',
      tags: ['runs'],
      summary: 'Recent runs, newest first (without their results: GET a run for it)',
      request: {
        query: z.object({
          kind: z.enum(RUN_KINDS).optional(),
          status: z.enum(RUN_STATUSES).optional(),
          since: TimeQuery.openapi({ description: 'Only runs started at or after this time (ISO 8601).' }),
          limit: z.coerce
            .number()
            .int()
            .min(1)
            .max(MAX_RUN_LIMIT)
            .optional()
            .openapi({ description: `At most this many runs (default ${DEFAULT_RUN_LIMIT}).` }),
          next: z
            .string()
            .max(1024)
            .refine(
              (token) => decodeRunCursor(token) !== undefined,
              'next must be a token a page of runs gave',
            )
            .optional()
            .openapi({ description: "The next page: the previous page's `next`, with the same filters." }),
        }),
      },
      responses: {
        200: json(
          z.object({
            runs: z.array(RunSchema),
            next: z
              .string()
              .optional()
              .openapi({ description: 'More runs are left: pass it as `next` for the next page.' }),
          }),
          'The runs',
        ),
        400: errors[400],
      },
    }),
    async (c) => {
      const filter = c.req.valid('query');
      const list = await runs.list(filter);
      return c.json(
        {
          runs: list.map(({ result: _, ...run }) => runJson(run)),
          ...(list.next === undefined ? {} : { next: list.next }),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/backups',
      tags: ['catalog'],
      summary: 'Complete backups, newest first, as `pgferry list --json` (and the unreadable ones)',
      request: {
        query: z.object({
          database: z
            .string()
            .min(1)
            .optional()
            .openapi({ description: 'Only backups filed under this name.' }),
          since: TimeQuery,
          until: TimeQuery,
        }),
      },
      responses: {
        200: json(
          z.object({
            backups: z.array(BackupManifestSchema.extend({ catalog: ListedCatalogSchema })),
            unreadable: z.array(
              z.object({
                id: z.string(),
                database: z.string(),
                startedAt: z.string(),
                folder: z.string(),
                problem: z.string(),
              }),
            ),
          }),
          'The backups',
        ),
        400: errors[400],
      },
    }),
    async (c) => {
      const { database, since, until } = c.req.valid('query');
      const listed = await listedBackups(
        store,
        {
          database,
          ...(since ? { since: new Date(since) } : {}),
          ...(until ? { until: new Date(until) } : {}),
        },
        new Date(),
      );
      return c.json(listed, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/backups/{database}/{id}',
      tags: ['catalog'],
      summary: 'One backup: its manifest, retention and reports, as `pgferry show --json`',
      request: {
        params: z.object({
          database: z
            .string()
            .min(1)
            .openapi({ param: { name: 'database', in: 'path' } }),
          id: z
            .string()
            .min(1)
            .openapi({ param: { name: 'id', in: 'path' }, description: 'A backup id, or `latest`.' }),
        }),
      },
      responses: { 200: json(BackupDetailSchema, 'The backup'), 400: errors[400], 404: errors[404] },
    }),
    async (c) => {
      const { database, id } = c.req.valid('param');
      const manifest = await resolveBackup(store, id, database);
      const { entries } = await scanStore(store, database);
      const entry = entries.find((e) => e.manifest.id === manifest.id);
      if (!entry) {
        return c.json(
          { error: 'NotFound', message: `backup ${id} of ${database} is not in ${store.url}` },
          404,
        );
      }
      return c.json(await backupDetail(store, entries, entry, new Date()), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/status',
      tags: ['catalog'],
      summary:
        'Per catalog name, the newest and newest verified backups and every problem, as `pgferry status --json`',
      request: {
        query: z.object({
          database: z.string().min(1).optional(),
          maxAge: z
            .string()
            .regex(/^\d+[mhdw]$/, 'maxAge is a duration such as 90m, 36h, 2d or 1w')
            .optional()
            .openapi({ description: 'A problem when the newest backup is older (90m, 36h, 2d, 1w).' }),
          maxVerifiedAge: z
            .string()
            .regex(/^\d+[mhdw]$/, 'maxVerifiedAge is a duration such as 90m, 36h, 2d or 1w')
            .optional()
            .openapi({ description: 'A problem when the newest verified backup is older.' }),
        }),
      },
      responses: { 200: json(StatusJsonSchema, 'The status'), 400: errors[400] },
    }),
    async (c) => {
      const { database, maxAge, maxVerifiedAge } = c.req.valid('query');
      const thresholds = {
        ...(maxAge ? { maxAge: parseDuration(maxAge) } : {}),
        ...(maxVerifiedAge ? { maxVerifiedAge: parseDuration(maxVerifiedAge) } : {}),
      };
      return c.json(await statusReport(store, new Date(), thresholds, database), 200);
    },
  );

  let document: unknown;
  app.get('/openapi.json', (c) => {
    document ??= openApiDocument(app);
    return c.json(document as object);
  });
  return app;
}

/** The API's OpenAPI 3.1 document, as `GET /openapi.json` serves it and the build writes it. */
export function openApiDocument(app: OpenAPIHono): object {
  return app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'pgferry',
      version: PGFERRY_VERSION,
      description:
        'Start and follow backups, restores, verifications and migrations; read the catalog. ' +
        'Served by `pgferry serve` (every request needs `Authorization: Bearer <token>`) and on AWS by ' +
        'API Gateway (IAM, SigV4). Paths are relative to the server: `Location` and `links` include its base path.',
    },
  });
}

/**
 * A run as the API returns it: the fields of `Run`, nothing the host keeps besides. (Its result is
 * the document the run stored, which its schema in core/contracts validated when it was written.)
 */
function runJson(run: Run): z.infer<typeof RunSchema> {
  const { id, kind, status, database, startedAt, finishedAt, state, progress, result, error, cleanup } = run;
  return Object.fromEntries(
    Object.entries({
      id,
      kind,
      status,
      database,
      startedAt,
      finishedAt,
      state,
      progress,
      result,
      error,
      cleanup,
    }).filter(([, value]) => value !== undefined),
  ) as z.infer<typeof RunSchema>;
}

function noRun(id: string) {
  return { error: 'NotFound', message: `no run ${id}` };
}

/** 400 with every problem of the part that failed (body, query, path or header). */
function invalid(c: Context, error: ZodError): Response {
  const issues = error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
  const message = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
  return c.json({ error: 'InvalidRequest', message: `invalid request: ${message}`, issues }, 400);
}
