/**
 * The local executor's ASL interpreter (cli/interpreter.ts) loads without the AWS SDK's Lambda
 * client and asl-validator, which a local run never uses; whatever uses them still gets them.
 * Run in a child process on the built code: Node's module cache, not jest's.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO, runNodeScript } from '../../support/cli';

const INTERPRETER = JSON.stringify(path.join(REPO, 'dist', 'cli', 'interpreter.js'));

/** The deferred modules' files among those Node has loaded. */
const LOADED = `
const deferred = () =>
  Object.keys(require.cache).filter((file) => /node_modules\\/(@aws-sdk\\/client-lambda|@aws-sdk\\/credential-providers|asl-validator)\\//.test(file)).length;
`;

async function run(body: string): Promise<unknown> {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-interpreter-')), 'probe.js');
  writeFileSync(
    file,
    `${LOADED}
const { loadInterpreter } = require(${INTERPRETER});
(async () => {
  ${body}
})().then((result) => process.stdout.write(JSON.stringify(result)), (err) => {
  process.stderr.write(String(err && err.stack));
  process.exit(1);
});`,
  );
  const result = await runNodeScript(file, []);
  if (result.code !== 0) throw new Error(`the probe failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

const DEFINITION = `{ StartAt: 'Work', States: { Work: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:123456789012:function:work', End: true } } }`;

test('a workflow runs with local handlers, and neither the Lambda client nor asl-validator loads', async () => {
  const result = await run(`
    const { StateMachine } = loadInterpreter();
    const machine = new StateMachine(${DEFINITION}, { validationOptions: { noValidate: true } });
    const execution = machine.run({ n: 1 }, {
      overrides: { taskResourceLocalHandlers: { Work: async (input) => ({ n: input.n + 1 }) } },
    });
    return { output: await execution.result, deferred: deferred() };
  `);
  expect(result).toEqual({ output: { n: 2 }, deferred: 0 });
});

test('what uses them gets the real modules: a definition validated, the Lambda client required', async () => {
  const result = await run(`
    const { StateMachine } = loadInterpreter();
    const before = deferred();
    let refused;
    try {
      new StateMachine({ StartAt: 'Missing', States: {} });
    } catch (err) {
      refused = /State machine definition is invalid/.test(err.message);
    }
    const valid = new StateMachine(${DEFINITION}) !== undefined;
    const { LambdaClient } = require(require.resolve('@aws-sdk/client-lambda', { paths: [${JSON.stringify(REPO)}] }));
    return { before, refused, valid, lambdaClient: typeof LambdaClient, after: deferred() > 0 };
  `);
  expect(result).toEqual({ before: 0, refused: true, valid: true, lambdaClient: 'function', after: true });
});
