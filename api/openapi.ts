/**
 * The API's OpenAPI 3.1 document, generated from the routes and the schemas of core/contracts:
 * the build writes it to dist/openapi.json, `npm run docs` to docs/openapi.json (a unit test keeps
 * that copy current), and the application serves it at `GET /openapi.json`.
 */
import { createApi, openApiDocument } from './app';
import type { RunHost } from './runs';

/** The document as a file holds it: the routes do not depend on the host, so none is needed. */
export function renderOpenApiDocument(): string {
  const nowhere = (): never => {
    throw new Error('no host: only the document is built');
  };
  const runs: RunHost = { start: nowhere, get: nowhere, list: nowhere, cancel: nowhere };
  const app = createApi({ runs, store: undefined as never });
  return `${JSON.stringify(openApiDocument(app), null, 2)}\n`;
}
