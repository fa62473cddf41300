/**
 * Which Node flags a local runner gets (cli/runner.ts): the runner started ahead gets those of
 * its command's first task, and a task's command (ECS's container override) gives its own, as
 * the image's CMD would.
 */
import { firstLocalActionOf, nodeFlagsOfCommand, runsWith } from '../../../cli/runner';
import {
  RUNNER_CONTAINER_ENTRY,
  RUNNER_NODE_FLAGS,
  runnerCommandOverride,
  runnerNodeFlags,
} from '../../../core/workflows';

const RESTORING = ['--min-semi-space-size=6', '--max-semi-space-size=6'];

test.each([
  [
    ['restore', '--store', 'file:///s', '--backup', 'latest', '--target', 'postgres://h/d'],
    'restore',
    RESTORING,
  ],
  [['--verbose', 'verify', '--store', 'file:///s', '--backup', 'latest'], 'verify', RESTORING],
  [['backup', '--source', 'postgres://h/d', '--store', 'file:///s'], 'dump', RUNNER_NODE_FLAGS],
  [['migrate', '--source', 'postgres://h/a', '--target', 'postgres://h/b'], 'migrate', RUNNER_NODE_FLAGS],
])('the runner started ahead for %j runs %s: its flags', (args, action, flags) => {
  expect(firstLocalActionOf(args)).toBe(action);
  expect(runnerNodeFlags(action)).toEqual(flags);
});

test.each([
  [['restore', '--help']],
  [['verify', '--aws', '--backup', 'latest']],
  [['list', '--store', 'x']],
  [[]],
])('no runner is started ahead for %j', (args) => {
  expect(firstLocalActionOf(args)).toBeUndefined();
});

test("a task's command gives its runner's flags; none gives the image's default", () => {
  for (const action of ['dump', 'restore', 'verify', 'migrate-schema-test', 'migrate'])
    expect(nodeFlagsOfCommand(runnerCommandOverride(action))).toEqual(runnerNodeFlags(action));
  expect(runnerCommandOverride('restore')).toEqual([...RESTORING, RUNNER_CONTAINER_ENTRY]);
  expect(runnerCommandOverride('migrate')).toBeUndefined();
  expect(nodeFlagsOfCommand(undefined)).toEqual(RUNNER_NODE_FLAGS);
  expect(nodeFlagsOfCommand([RUNNER_CONTAINER_ENTRY])).toEqual([]);
});

test("a command that does not end with the container's entry is refused", () => {
  expect(() => nodeFlagsOfCommand(['--max-semi-space-size=6'])).toThrow(
    'the pg-tools container command must end with /app/main.js (got ["--max-semi-space-size=6"])',
  );
  expect(() => nodeFlagsOfCommand(['/app/main.js', '--x'])).toThrow(/must end with \/app\/main\.js/);
});

test('a runner is taken for a task only when it runs with the flags the task asks for', () => {
  const runner = { nodeFlags: RUNNER_NODE_FLAGS };
  expect(runsWith(runner, runnerNodeFlags('dump'))).toBe(true);
  expect(runsWith(runner, runnerNodeFlags('restore'))).toBe(false);
  expect(runsWith({ nodeFlags: RESTORING }, runnerNodeFlags('verify'))).toBe(true);
});
