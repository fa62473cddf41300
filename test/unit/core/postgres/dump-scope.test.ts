/** A backup's scope: which patterns are refused, and the pg_dump arguments the rest become. */
import { BackupRequestSchema, parsePayload } from '../../../../core/contracts';
import {
  asciiPattern,
  assertDumpPattern,
  type DumpScope,
  describeDumpScope,
  dumpScopeArgs,
  isScoped,
  MAX_DUMP_PATTERN_CHARS,
  patternRegexes,
  unmatchedPattern,
} from '../../../../core/postgres/dump-scope';

const none: DumpScope = {
  schemas: [],
  excludeSchemas: [],
  tables: [],
  excludeTables: [],
  excludeTableData: [],
};

test.each([
  ['an empty pattern', '', '--table needs a schema or table name (or pattern), not an empty one'],
  ['blanks only', '  ', '--table needs a schema or table name (or pattern), not an empty one'],
  ['a NUL', 'a\u0000b', '--table may not hold a control character (\\u0000): give the name as it is'],
  ['a line break', 'orders\n', '--table may not hold a control character (\\u000a): give the name as it is'],
  [
    'an absurd length',
    'x'.repeat(MAX_DUMP_PATTERN_CHARS + 1),
    `--table is ${MAX_DUMP_PATTERN_CHARS + 1} characters long; a pattern may have at most ${MAX_DUMP_PATTERN_CHARS}`,
  ],
])('%s is refused in one line naming the option', (_what, pattern, message) => {
  expect(() => assertDumpPattern(pattern, '--table')).toThrow(message);
});

test.each([
  'orders',
  'public.orders',
  'app.log_*',
  '"Mixed Case"."Table ?"',
  '-looks-like-an-option',
  "it's",
  'x'.repeat(MAX_DUMP_PATTERN_CHARS),
])('%s is a pattern', (pattern) => {
  expect(() => assertDumpPattern(pattern)).not.toThrow();
});

test('an unscoped dump gets no arguments', () => {
  expect(isScoped(undefined)).toBe(false);
  expect(isScoped(none)).toBe(false);
  expect(dumpScopeArgs(undefined)).toEqual([]);
  expect(dumpScopeArgs(none)).toEqual([]);
  expect(describeDumpScope(none)).toBe('whole database');
});

test('each pattern is one argument holding its option, whatever it holds (no shell, no splitting)', () => {
  const scope: DumpScope = {
    ...none,
    schemas: ['app', 'a b; rm -rf /'],
    excludeTables: ['-v', 'app.log_*'],
    excludeTableData: ['"Audit"."Log $HOME"'],
  };
  expect(dumpScopeArgs(scope)).toEqual([
    '--schema=app',
    '--schema=a b; rm -rf /',
    '--exclude-table=-v',
    '--exclude-table=app.log_*',
    '--exclude-table-data="Audit"."Log $HOME"',
    '--strict-names',
  ]);
  expect(describeDumpScope(scope)).toBe(
    '--schema=app --schema="a b; rm -rf /" --exclude-table=-v --exclude-table=app.log_* ' +
      '--exclude-table-data="\\"Audit\\".\\"Log $HOME\\""',
  );
});

test('--strict-names comes with an include pattern only: pg_dump checks no exclude pattern', () => {
  expect(dumpScopeArgs({ ...none, tables: ['orders'] })).toContain('--strict-names');
  expect(dumpScopeArgs({ ...none, schemas: ['app'] })).toContain('--strict-names');
  expect(dumpScopeArgs({ ...none, excludeTables: ['logs'], excludeSchemas: ['tmp'] })).not.toContain(
    '--strict-names',
  );
  expect(dumpScopeArgs({ ...none, excludeTableData: ['logs'] })).toEqual(['--exclude-table-data=logs']);
});

test('a pattern that is not one is refused when building the arguments too', () => {
  expect(() => dumpScopeArgs({ ...none, tables: [''] })).toThrow('--table needs a schema or table name');
});

describe('in a backup request', () => {
  const request = {
    source: { host: 'db.example', port: 5432, database: 'app', user: 'app' },
    store: 'file:///tmp/store',
  };

  test('the lists default to empty, and an unscoped request needs none', () => {
    expect(BackupRequestSchema.parse(request).scope).toBeUndefined();
    expect(BackupRequestSchema.parse({ ...request, scope: { tables: ['orders'] } }).scope).toEqual({
      ...none,
      tables: ['orders'],
    });
  });

  test('a bad pattern is refused naming where it is', () => {
    expect(() =>
      parsePayload(BackupRequestSchema, { ...request, scope: { tables: ['a', ''] } }, 'request'),
    ).toThrow(
      'invalid request: scope.tables.1: a pattern needs a schema or table name (or pattern), not an empty one',
    );
    expect(() =>
      parsePayload(BackupRequestSchema, { ...request, scope: { tables: [], other: ['x'] } }, 'request'),
    ).toThrow(/invalid request: scope: Unrecognized key: "other"/);
  });
});

test("pg_dump's refusal of a pattern that matches nothing names the option to fix", () => {
  expect(
    unmatchedPattern('pg_dump: error: no matching tables were found for pattern "app.ordres"', 'shop'),
  ).toBe(
    '--table "app.ordres" matches no table of the database "shop": check its spelling ' +
      '(each --schema and --table pattern must match); nothing was backed up',
  );
  expect(
    unmatchedPattern('pg_dump: error: no matching schemas were found for pattern "nosuch"', 'shop'),
  ).toMatch(/^--schema "nosuch" matches no schema of the database "shop"/);
  expect(unmatchedPattern('pg_dump: error: connection to server failed', 'shop')).toBeUndefined();
});

test.each([
  ['app.Orders', 2, { schema: '^(app)$', name: '^(orders)$', dots: 1 }],
  ['"My.Table"', 2, { name: '^(My\\.Table)$', dots: 0 }],
  ['a*.b?', 2, { schema: '^(a.*)$', name: '^(b.)$', dots: 1 }],
  ['"a""b$"', 1, { name: '^(a"b\\$)$', dots: 0 }],
  ['x.y', 1, { name: '^(x.y)$', dots: 1 }],
  ['t(a|b)', 1, { name: '^(t(a|b))$', dots: 0 }],
  ['tá', 1, { name: '^(tá)$', dots: 0 }],
] as const)("%s becomes pg_dump's own regular expressions", (pattern, parts, regexes) => {
  expect(patternRegexes(pattern, parts)).toEqual(regexes);
});

test.each([
  ['tá', 't?'],
  ['ésquema.ítem', '?squema.?tem'],
  ['"Tá"', '"T"?""'],
  ['"á""b"', '""?"""b"'],
  ['plain', 'plain'],
])(
  '%s is given to pg_dump of a database not in UTF8 as %s, which means the same with ? for each',
  (pattern, ascii) => {
    expect(asciiPattern(pattern)).toBe(ascii);
    const wanted = patternRegexes(pattern, 2);
    const got = patternRegexes(ascii, 2);
    const dotted = (regex?: string) => regex?.replace(/[^\p{ASCII}]/gu, '.');
    expect({ ...got }).toEqual({ ...wanted, schema: dotted(wanted.schema), name: dotted(wanted.name) });
  },
);
