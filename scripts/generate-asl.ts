/**
 * Build step: writes the workflows' ASL, synthesized from lib/, to dist/asl/<name>.asl.json,
 * where the CLI reads it (so a local run never pays for a CDK synth).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { synthesizeWorkflowDefinitions } from '../lib/asl';
import { REPO_ROOT } from '../lib/paths';

const outDir = path.join(REPO_ROOT, 'dist', 'asl');
mkdirSync(outDir, { recursive: true });
for (const [name, definition] of Object.entries(synthesizeWorkflowDefinitions())) {
  writeFileSync(path.join(outDir, `${name}.asl.json`), `${JSON.stringify(definition, null, 2)}\n`);
}
