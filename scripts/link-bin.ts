/**
 * Install step (the end of `prepare`): links the project's own CLI as `node_modules/.bin/pgferry`.
 *
 * Why not package.json's `bin`: npm never links the root package's own bin, and `npx <cmd>` in a
 * folder whose package.json declares a bin named `<cmd>` installs that folder — all its
 * dependencies — into npx's cache before running it (libnpmexec's "self-execution"; measured here:
 * ~2 min with an empty cache). Without a `bin` entry, npx finds `node_modules/.bin/pgferry` and
 * runs it at once, installing nothing. The link is relative, so a moved or copied clone keeps it.
 */
import { lstatSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../lib/paths';

/** The command name users type, `npx pgferry …`. */
export const COMMAND = 'pgferry';

/**
 * Points `<root>/node_modules/.bin/pgferry` at `<root>/bin/pgferry.js` (replacing whatever is
 * there) and returns the link's path.
 */
export function linkOwnBin(root: string): string {
  const binDir = path.join(root, 'node_modules', '.bin');
  const link = path.join(binDir, COMMAND);
  const target = path.relative(binDir, path.join(root, 'bin', 'pgferry.js'));
  mkdirSync(binDir, { recursive: true });
  if (lstatSync(link, { throwIfNoEntry: false })) rmSync(link);
  symlinkSync(target, link);
  return link;
}

if (require.main === module) linkOwnBin(REPO_ROOT);
