/**
 * `npm run docs`: writes docs/commands.md from the CLI's commander definitions; with `--stdout`,
 * prints it instead (test/integration/cli/command-reference.test.ts compares the two).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { renderCommandReference } from '../cli/command-reference';
import { buildProgram } from '../cli/main';

const reference = renderCommandReference(buildProgram());
if (process.argv.includes('--stdout')) {
  process.stdout.write(reference);
} else {
  const target = path.join(__dirname, '..', '..', 'docs', 'commands.md');
  writeFileSync(target, reference);
  process.stdout.write(`wrote ${path.relative(process.cwd(), target)}\n`);
}
