/**
 * A child process's arguments that are bytes, not text. Node gives a child its arguments as UTF-8,
 * but a name in a database not in UTF8 is other bytes (LATIN1's `é` is 0xE9, no UTF-8), and
 * pg_restore compares its `--schema`/`--table` with the archive's names byte for byte. Such an
 * argument is held here as text marked by a NUL, which no argument can hold (a C string ends at
 * it), and {@link spawnable} has `/bin/sh` make its bytes with `printf` and `exec` the program:
 * the child is the program itself (same process, signals, exit status), given exactly those bytes.
 * Imports nothing.
 */

const MARK = '\0';

/** An argument of `prefix` (text, e.g. `--table=`) followed by `bytes`, as {@link spawnable} passes it. */
export function bytesArgument(prefix: string, bytes: Uint8Array): string {
  return `${prefix}${MARK}${Array.from(bytes, (b) => String.fromCharCode(b)).join('')}`;
}

/** The bytes the program is given for `arg` (a {@link bytesArgument}, or text: its UTF-8). */
export function argumentBytes(arg: string): Uint8Array {
  const at = arg.indexOf(MARK);
  if (at < 0) return new TextEncoder().encode(arg);
  const prefix = new TextEncoder().encode(arg.slice(0, at));
  const bytes = Array.from(arg.slice(at + 1), (c) => c.charCodeAt(0));
  return Uint8Array.from([...prefix, ...bytes]);
}

/**
 * Each argument tagged: `t` and its text, or `b` and its bytes as `printf %b`'s octal escapes; the
 * script rebuilds the arguments ("$@") and runs the program (`$0`) in its place.
 */
const SCRIPT = [
  'n=$#',
  'while [ "$n" -gt 0 ]; do',
  '  a=$1; shift; n=$((n - 1))',
  '  case $a in',
  // The `x` keeps the command substitution from dropping a last byte that is a newline.
  `    b*) a=$(printf '%bx' "\${a#b}"); a=\${a%x} ;;`,
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's, not a template's
  '    *) a=${a#t} ;;',
  '  esac',
  '  set -- "$@" "$a"',
  'done',
  'exec "$0" "$@"',
].join('\n');

/**
 * How to spawn `command` with `args`: as they are, or, when an argument is a {@link bytesArgument},
 * through `/bin/sh`, which makes its bytes and runs `command` in its own place.
 */
export function spawnable(command: string, args: readonly string[]): { command: string; args: string[] } {
  if (!args.some((a) => a.includes(MARK))) return { command, args: [...args] };
  const tagged = args.map((a) =>
    a.includes(MARK)
      ? `b${Array.from(argumentBytes(a), (b) => `\\0${b.toString(8).padStart(3, '0')}`).join('')}`
      : `t${a}`,
  );
  return { command: '/bin/sh', args: ['-c', SCRIPT, command, ...tagged] };
}
