/**
 * The CLI runs the generated definitions without validating them again (it cost ~0.7 s per run):
 * they must pass the interpreter's validation when they are generated.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { synthesizeWorkflowDefinitions } from '../../../lib/asl';

const definitions = Object.entries(synthesizeWorkflowDefinitions());

test.each(definitions)('the %s definition passes the local interpreter’s validation', (_name, definition) => {
  expect(() => new StateMachine(definition as never)).not.toThrow();
});

test('a definition the interpreter would refuse is refused', () => {
  expect(() => new StateMachine({ StartAt: 'Missing', States: {} } as never)).toThrow();
});
