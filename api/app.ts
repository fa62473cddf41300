/**
 * The HTTP API (issue 14): one application, served by `pgferry serve` on one machine and by the
 * API's Lambda behind API Gateway. Routes are written against the `RunHost` port (./runs.ts) and
 * the store; authentication is the host's (a bearer token in `serve`, IAM on API Gateway).
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { BackupStore } from '../core/store';
import type { RunHost } from './runs';

/** What the application needs from its host. */
export interface ApiDeps {
  /** Where runs execute. */
  runs: RunHost;
  /** The server's store: the catalog the API reads, and the store every run's request is given. */
  store: BackupStore;
}

/** The API's application: every route, and `GET /openapi.json`. */
export function createApi(deps: ApiDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  void deps;
  return app;
}
