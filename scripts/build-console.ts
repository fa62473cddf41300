/**
 * The build's step for the web console's page (cli/console/page/): its script is compiled by
 * `tsc -p cli/console/page/tsconfig.json` (the browser's lib, no module system); this copies the
 * HTML and CSS beside it, into dist/cli/console/page/, where `pgferry serve` reads them. Nothing
 * is fetched at run time: the package ships these files.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';

const from = path.resolve(__dirname, '..', '..', 'cli', 'console', 'page');
const to = path.resolve(__dirname, '..', 'cli', 'console', 'page');
mkdirSync(to, { recursive: true });
for (const file of ['index.html', 'signin.html', 'console.css']) {
  copyFileSync(path.join(from, file), path.join(to, file));
}
