/**
 * Runs the built CLI (dist/cli/main.js) with recorded AWS responses instead of AWS, through its
 * `AwsAccess` seam: `node recorded-aws-cli.js <fixture.json> <sent.json> <pgferry args…>`. Each
 * `send()` must be the fixture's next recorded command; the requests sent are written to
 * <sent.json> for the test to assert on. (A child process: commander is ESM-only, which jest's
 * module loader cannot require.)
 */
const { readFileSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const [fixtureFile, sentFile, ...args] = process.argv.slice(2);
const fixture = JSON.parse(readFileSync(fixtureFile, 'utf8'));
const calls = fixture.calls;
// RECORDED_STORE_URL: the recorded stack's store swapped for one this machine can read — in the
// stack's outputs and in the executions' outputs that name it.
if (process.env.RECORDED_STORE_URL) {
  for (const output of calls[0].response?.Stacks?.[0]?.Outputs ?? []) {
    if (output.OutputKey !== 'StoreUrl') continue;
    const recorded = output.OutputValue;
    output.OutputValue = process.env.RECORDED_STORE_URL;
    for (const call of calls) {
      if (typeof call.response?.output === 'string')
        call.response.output = call.response.output.replaceAll(recorded, process.env.RECORDED_STORE_URL);
    }
  }
}
const sent = [];
const save = () => writeFileSync(sentFile, JSON.stringify({ sent, remaining: calls.length }, null, 2));
async function send(command) {
  const name = command.constructor.name;
  sent.push({ command: name, input: command.input });
  save();
  const call = calls.shift();
  if (!call) throw new Error(`unrecorded ${name}: ${path.basename(fixtureFile)} has no more calls`);
  if (call.command !== name)
    throw new Error(`${path.basename(fixtureFile)} expected ${call.command}, got ${name}`);
  if (call.error) throw Object.assign(new Error(call.error.message), call.error);
  return call.response;
}
const clients = { cloudFormation: { send }, sfn: { send } };
const access = { clients: async () => clients, pollIntervalMs: 0 };

save();
const { main } = require(path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js'));
main(['node', 'pgferry', ...args], access).then(save);
