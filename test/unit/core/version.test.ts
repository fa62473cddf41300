import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { PGFERRY_VERSION } from '../../../core/version';

test("the version recorded in manifests is package.json's", () => {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  expect(PGFERRY_VERSION).toBe(pkg.version);
});
