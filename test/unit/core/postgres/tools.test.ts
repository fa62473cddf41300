/** The tools' pure parts: the parallel restore's two-pass list split, a tool's first error. */
import { firstError, splitRestoreList } from '../../../../core/postgres/tools';

/** A `pg_restore --list` of a small archive, as pg_restore 15 prints it (comments already dropped). */
const LIST = [
  '215; 1259 16386 TABLE public accounts app',
  '216; 1259 16391 MATERIALIZED VIEW public totals app',
  '3345; 0 16386 TABLE DATA public accounts app',
  '3190; 2606 16390 CONSTRAINT public accounts accounts_pkey app',
  '3346; 0 0 ACL - SCHEMA public pg_database_owner',
  '3347; 0 16386 ACL public TABLE accounts app',
  '3348; 826 16395 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES app',
  '3349; 0 16391 MATERIALIZED VIEW DATA public totals app',
  '3350; 3466 16396 EVENT TRIGGER - audit_ddl app',
  '3351; 0 0 COMMENT - EVENT TRIGGER audit_ddl app',
  '3352; 0 0 COMMENT - TABLE accounts app',
];

test('the second pass holds the privileges and what needs them, in the archive order', () => {
  const { first, last } = splitRestoreList(LIST);
  expect(last.map((l) => l.split(';')[0])).toEqual(['3346', '3347', '3348', '3349', '3350', '3351']);
  expect(first.map((l) => l.split(';')[0])).toEqual(['215', '216', '3345', '3190', '3352']);
});

test('every entry is in exactly one pass', () => {
  const { first, last } = splitRestoreList(LIST);
  expect([...first, ...last].sort()).toEqual([...LIST].sort());
  expect(splitRestoreList([])).toEqual({ first: [], last: [] });
});

test('a table whose name looks like a privilege stays in the first pass', () => {
  const entry = '217; 1259 16400 TABLE public "ACL public" app';
  expect(splitRestoreList([entry])).toEqual({ first: [entry], last: [] });
});

test('firstError names the first error with the line after it', () => {
  const stderr = [
    'pg_restore: connecting to database for restore',
    'pg_restore: error: could not execute query: ERROR:  relation "accounts" already exists',
    'Command was: CREATE TABLE public.accounts (id integer);',
    'pg_restore: error: could not execute query: ERROR:  another one',
  ].join('\n');
  expect(firstError(stderr)).toBe(
    'pg_restore: error: could not execute query: ERROR:  relation "accounts" already exists | Command was: CREATE TABLE public.accounts (id integer);',
  );
});

test('firstError without an error line gives the last two lines, or says there was no output', () => {
  expect(firstError('one\ntwo\n\nthree\n')).toBe('two | three');
  expect(firstError('FATAL:  terminating connection due to administrator command')).toMatch(/^FATAL/);
  expect(firstError('')).toBe('no error output');
});
