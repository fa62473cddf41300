/** A failed Map iteration's error, as the set records it. */
import { memberError } from '../../../../../lambdas/server-backup/record/record';

test("a nested execution's failure is its child's error and cause", () => {
  const cause = JSON.stringify({
    executionArn: 'arn:…',
    status: 'FAILED',
    error: 'Pgferry.DumpFailed',
    cause: 'lock timeout on orders',
  });
  expect(memberError({ Error: 'States.TaskFailed', Cause: cause })).toEqual({
    name: 'Pgferry.DumpFailed',
    message: 'lock timeout on orders',
  });
});

test('any other error is recorded as it came (locally: the nested run threw it)', () => {
  expect(memberError({ Error: 'Pgferry.DumpFailed', Cause: 'lock timeout' })).toEqual({
    name: 'Pgferry.DumpFailed',
    message: 'lock timeout',
  });
  expect(memberError({})).toEqual({ name: 'Error', message: 'the backup failed' });
});
