/** `printable`: what a name taken from a database or a store looks like in a table or a log line. */
import { formatTable, printable } from '../../../cli/output';

test.each([
  ['shop', 'shop'],
  ['café ☃ "quoted" back\\slash', 'café ☃ "quoted" back\\slash'],
  ['shop\nbilling  ok', 'shop\\nbilling  ok'],
  ['a\tb\rc', 'a\\tb\\rc'],
  ['\x1b[2Kgone', '\\x1b[2Kgone'],
  ['nul\x00del\x7fc1\x85', 'nul\\x00del\\x7fc1\\x85'],
  ['line\u2028para\u2029', 'line\\u2028para\\u2029'],
  ['evil\u202etxt.exe', 'evil\\u202etxt.exe'],
])('%j prints as %j', (name, shown) => {
  expect(printable(name)).toBe(shown);
});

test('a table escapes every cell and pads by what is printed', () => {
  expect(
    formatTable(
      ['NAME', 'STATUS'],
      [
        ['a\nb', 'ok'],
        ['c', 'ok'],
      ],
    ).split('\n'),
  ).toEqual(['NAME  STATUS', 'a\\nb  ok', 'c     ok']);
});
