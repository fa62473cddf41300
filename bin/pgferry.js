#!/usr/bin/env node

// pgferry needs Node 22 (the AWS Lambda runtime it targets, and the ASL interpreter's minimum).
// `npx pgferry` and npm scripts already find the project's own Node 22 (the `node` package);
// when started by an older Node, hand over to that one.
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  const path = require('node:path');
  const { spawnSync } = require('node:child_process');
  const node22 = path.join(__dirname, '..', 'node_modules', 'node', 'bin', 'node');
  const result = spawnSync(node22, [__filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (result.error) {
    process.stderr.write(
      `pgferry: needs Node.js 22 or newer (this is ${process.version}); run \`npm install\` first\n`,
    );
    process.exit(1);
  }
  process.exit(result.status ?? 1);
}
// Cache V8's compiled code between runs (in the system's temporary folder): measured, it takes
// about a third off the CPU time of loading the CLI and the runner, which every command pays.
const nodeModule = require('node:module');
if (nodeModule.enableCompileCache) {
  const { directory } = nodeModule.enableCompileCache();
  // The runner, a child process, uses the same cache (see cli/runner.ts).
  if (directory && !process.env.NODE_COMPILE_CACHE) process.env.NODE_COMPILE_CACHE = directory;
}
// A command that runs a local workflow starts its runner now, before the CLI's modules load, so
// that the runner loads its own meanwhile (main() ends it if no task takes it: cli/runner.ts).
require('../dist/cli/runner.js').startRunnerAhead(process.argv.slice(2));
require('../dist/cli/main.js').main();
