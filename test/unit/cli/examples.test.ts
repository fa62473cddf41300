/** Example lines in help: broken for the shell where they would run past the width. */
import { shellLines } from '../../../cli/examples';

test('a short example stays on one line', () => {
  expect(shellLines('pgferry list --store ./backups', 80)).toEqual(['pgferry list --store ./backups']);
});

test('a long example breaks before an option, keeping the option with its value', () => {
  expect(shellLines('pgferry migrate --source a --target bbbbbbbb --store c', 30)).toEqual([
    'pgferry migrate --source a \\',
    '    --target bbbbbbbb \\',
    '    --store c',
  ]);
});

test('an option and a value too long for one line are broken between them', () => {
  expect(shellLines(`pgferry backup --password-secret-arn ${'a'.repeat(30)}`, 36)).toEqual([
    'pgferry backup \\',
    '    --password-secret-arn \\',
    `    ${'a'.repeat(30)}`,
  ]);
});
