/**
 * `npm run docs`: writes docs/commands.md from the CLI's commander definitions
 * (test/unit/cli/command-reference.test.ts fails when it is out of date).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { renderCommandReference } from '../cli/command-reference';
import { buildProgram } from '../cli/main';

const target = path.join(__dirname, '..', '..', 'docs', 'commands.md');
writeFileSync(target, renderCommandReference(buildProgram()));
process.stdout.write(`wrote ${path.relative(process.cwd(), target)}\n`);
