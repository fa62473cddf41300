import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import * as contracts from '../../../../core/contracts';
import { parsePayload } from '../../../../core/contracts';

/**
 * `json-schemas.jsonl` holds, one line per export of core/contracts, the JSON Schema (zod's
 * `z.toJSONSchema`, for what a schema accepts and for what it produces) of every exported schema,
 * and the value of every exported constant — captured from the single-file `core/contracts.ts`
 * before it was split into `core/contracts/`. The split (and any later change) must leave the
 * wire formats exactly as they were: a change here is a change of a contract, and needs a new
 * schema version, not a new fixture.
 */
type Entry = { name: string; input?: unknown; output?: unknown; value?: unknown };

const fixture: Entry[] = readFileSync(join(__dirname, 'json-schemas.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.length > 0)
  .map((line) => JSON.parse(line) as Entry);

function describeExport(name: string, value: unknown): Entry {
  if (value instanceof z.ZodType) {
    return {
      name,
      input: z.toJSONSchema(value, { io: 'input' }),
      output: z.toJSONSchema(value, { io: 'output' }),
    };
  }
  return { name, value: typeof value === 'function' ? 'function' : value };
}

test('core/contracts exports the same names as before the split', () => {
  expect(Object.keys(contracts).sort()).toEqual(fixture.map((entry) => entry.name).sort());
});

test.each(fixture.map((entry) => [entry.name, entry] as const))(
  '%s accepts and produces what it did',
  (name, entry) => {
    expect(describeExport(name, (contracts as Record<string, unknown>)[name])).toEqual(entry);
  },
);

/** What JSON Schema cannot say: the refinements (names checked in code) and the custom messages. */
describe('refinements and messages', () => {
  const connection = { host: 'db.example', port: 5432, database: 'app', user: 'app' };
  const store = 'file:///tmp/store';

  test.each([
    ['a database name with a NUL', contracts.ConnectionSchema, { ...connection, database: 'a\u0000b' }],
    ['an empty catalog name', contracts.BackupRequestSchema, { name: '', source: connection, store }],
    [
      'a backup ref that is neither',
      contracts.RestoreRequestSchema,
      { store, backup: 'yesterday', target: connection },
    ],
    [
      'a store that is not a URL',
      contracts.VerifyRequestSchema,
      { store: 'store', backup: 'latest', name: 'app' },
    ],
  ])('%s is refused with the same line', (_what, schema, document) => {
    expect(() =>
      parsePayload(schema as z.ZodType<unknown>, document, 'input'),
    ).toThrowErrorMatchingSnapshot();
  });

  test('defaults are filled in as before', () => {
    expect(contracts.BackupRequestSchema.parse({ source: connection, store })).toMatchSnapshot();
    expect(
      contracts.RestoreRequestSchema.parse({ store, backup: 'latest', name: 'app', target: connection }),
    ).toMatchSnapshot();
    expect(
      contracts.MigrateRequestSchema.parse({
        source: connection,
        target: { ...connection, host: 'new.example' },
        store,
      }),
    ).toMatchSnapshot();
  });
});
