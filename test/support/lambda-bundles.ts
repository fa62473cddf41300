/**
 * The Lambda functions as Lambda runs them: the stack synthesized with bundling on (each handler
 * is the esbuild bundle `cdk deploy` uploads, with the deployment's bindings compiled in), and a
 * bundle invoked with an event in a process of its own, with a Lambda-like environment (the
 * runtime's AWS SDK, and nothing else, resolvable from the bundle; AWS_LAMBDA_FUNCTION_NAME set).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { type PgferryConfigInput, parseConfig } from '../../lib/config';
import { PgferryStack } from '../../lib/pgferry-stack';
import { REPO } from './cli';

export interface BundledStack {
  stack: PgferryStack;
  /** The folder of the bundle of the function whose construct id is `id` (`Preflight`, `RestorePreflight`, …). */
  bundleOf(id: string): string;
}

/** Synthesizes the stack of `config` with every function bundled (about 20 s). */
export function synthesizeBundled(config: PgferryConfigInput): BundledStack {
  const outdir = mkdtempSync(path.join(tmpdir(), 'pgferry-bundled-'));
  const app = new App({ outdir });
  const stack = new PgferryStack(app, 'Bundled', {
    env: { account: '123456789012', region: 'eu-west-1' },
    config: parseConfig(config),
  });
  app.synth();
  // The runtime's AWS SDK, where Lambda's module resolution finds it (ES module imports too: the
  // bundles load the SDK with `import()`, which NODE_PATH does not reach).
  mkdirSync(path.join(outdir, 'node_modules'));
  symlinkSync(path.join(REPO, 'node_modules', '@aws-sdk'), path.join(outdir, 'node_modules', '@aws-sdk'));
  return {
    stack,
    bundleOf(id: string): string {
      const fn = stack.functions.all.find((f) => f.node.id === id);
      if (!fn) throw new Error(`no function ${id}`);
      const code = Stack.of(fn).resolve((fn.node.defaultChild as lambda.CfnFunction).code) as {
        s3Key: string;
      };
      return path.join(outdir, `asset.${code.s3Key.replace(/\.zip$/, '')}`);
    },
  };
}

export type Invocation =
  | { ok: true; result: unknown }
  | { ok: false; errorType: string; errorMessage: string };

const INVOKE = `
const { handler } = require(process.argv[1] + '/index.js');
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  handler(JSON.parse(input)).then(
    (result) => { process.stdout.write(JSON.stringify({ ok: true, result })); process.exit(0); },
    (err) => { process.stdout.write(JSON.stringify({ ok: false, errorType: err.name, errorMessage: err.message })); process.exit(0); },
  );
});`;

/**
 * Invokes the bundle in `dir` with `event`, in its own Node.js process: the environment is only
 * what Lambda would give it (plus `env`), and the AWS SDK is the only package it can load, as the
 * Lambda runtime provides it.
 */
export function invokeBundle(
  dir: string,
  event: unknown,
  env: Record<string, string> = {},
): Promise<Invocation> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', INVOKE, dir], {
      env: {
        PATH: process.env.PATH,
        AWS_LAMBDA_FUNCTION_NAME: path.basename(dir),
        AWS_REGION: 'eu-west-1',
        POWERTOOLS_LOG_LEVEL: 'SILENT',
        ...env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      try {
        resolve(JSON.parse(stdout) as Invocation);
      } catch {
        reject(new Error(`the bundle in ${dir} printed no result: ${stdout} ${stderr}`));
      }
    });
    child.stdin.end(JSON.stringify(event));
  });
}
