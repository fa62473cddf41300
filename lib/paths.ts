import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

/** The repository root, whether the code runs from `lib/` (ts-jest) or `dist/lib/` (built). */
export const REPO_ROOT: string = (() => {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'pgferry')
      return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find pgferry's package.json above ${__dirname}`);
    dir = parent;
  }
})();
