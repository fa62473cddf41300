import { argumentBytes, bytesArgument, spawnable } from '../../../core/byte-arguments';
import { runProcess } from '../../../core/process';

// Every byte but NUL, and what the shell or printf could read otherwise: quotes, `$`, `\`, `%`,
// `-`, a trailing newline.
const ALL = Uint8Array.from({ length: 255 }, (_, i) => i + 1);

test('a program is given a bytes argument exactly, beside text arguments as they are', async () => {
  const args = ['a b', bytesArgument('--table=', ALL), '-e', 'x\ny', '', '$HOME', "\\c'%b", 'é'];
  const out = await runProcess('/bin/sh', ['-c', 'for a; do printf "%s\\0" "$a"; done', 'sh', ...args]);
  expect(out.code).toBe(0);
  const given = out.stdout.subarray(0, -1).toString('latin1').split('\0');
  expect(given.map((a) => Buffer.from(a, 'latin1'))).toEqual(args.map((a) => Buffer.from(argumentBytes(a))));
  expect(Buffer.from(argumentBytes(args[1]))).toEqual(Buffer.concat([Buffer.from('--table='), ALL]));
});

test('without a bytes argument the program is spawned as it is', () => {
  expect(spawnable('/usr/bin/pg_restore', ['--list', 'é'])).toEqual({
    command: '/usr/bin/pg_restore',
    args: ['--list', 'é'],
  });
});

test("the program's exit status is its own", async () => {
  const out = await runProcess('/bin/sh', ['-c', 'exit 7', bytesArgument('', Uint8Array.of(0xe9))]);
  expect(out.code).toBe(7);
});
