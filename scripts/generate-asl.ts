/**
 * Build step: writes the workflows' ASL, synthesized from lib/, to dist/asl/<name>.asl.json,
 * where the CLI reads it (so a local run never pays for a CDK synth). Each definition is
 * validated here, once, by the interpreter that runs it locally: the CLI then skips that
 * validation, which cost about 0.7 s of CPU per run (ajv compiling the ASL schema).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { synthesizeWorkflowDefinitions } from '../lib/asl';
import { REPO_ROOT } from '../lib/paths';

const outDir = path.join(REPO_ROOT, 'dist', 'asl');
mkdirSync(outDir, { recursive: true });
for (const [name, definition] of Object.entries(synthesizeWorkflowDefinitions())) {
  // Throws on a definition the interpreter would refuse (on a copy: it fills in defaults).
  new StateMachine(structuredClone(definition) as never);
  writeFileSync(path.join(outDir, `${name}.asl.json`), `${JSON.stringify(definition, null, 2)}\n`);
}
