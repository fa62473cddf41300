/**
 * Part of `npm run build`: writes the API's OpenAPI document to dist/openapi.json; with `--docs`
 * (`npm run docs`), to docs/openapi.json as well (test/unit/api/openapi.test.ts compares it).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { renderOpenApiDocument } from '../api/openapi';

const document = renderOpenApiDocument();
const root = path.join(__dirname, '..', '..');
writeFileSync(path.join(root, 'dist', 'openapi.json'), document);
if (process.argv.includes('--docs')) {
  writeFileSync(path.join(root, 'docs', 'openapi.json'), document);
  process.stdout.write('wrote docs/openapi.json\n');
}
