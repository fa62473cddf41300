/**
 * Start-up cost: the AWS SDK is about a third of what the CLI and the runner load, and a local
 * store needs none of it. Checked on the built code, in a fresh process.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { REPO } from '../../support/cli';

/** Opens a store in a fresh Node process; true when the S3 client got loaded. */
function loadsAwsSdk(storeUrl: string): boolean {
  const store = path.join(REPO, 'dist', 'core', 'store', 'index.js');
  const script = `
    require(${JSON.stringify(store)}).openStore(${JSON.stringify(storeUrl)});
    const loaded = Object.keys(require.cache).some((f) => f.includes('@aws-sdk/client-s3'));
    process.stdout.write(String(loaded));`;
  return execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }) === 'true';
}

test('opening a local store does not load the AWS SDK', () => {
  expect(loadsAwsSdk('file:///tmp/pgferry-store')).toBe(false);
});

test('opening an S3 store loads the AWS SDK', () => {
  expect(loadsAwsSdk('s3://pgferry-bucket/backups')).toBe(true);
});
