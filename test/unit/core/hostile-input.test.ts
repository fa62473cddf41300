/**
 * Random input against the input schemas and the store-key functions: nothing but a validation
 * error (never a crash of another kind), and never a key outside its database's folder.
 */
import fc from 'fast-check';
import type { z } from 'zod';
import {
  BackupRequestSchema,
  MAX_EXECUTION_INPUT_BYTES,
  parseExecutionInput,
  parsePayload,
  RestoreRequestSchema,
  VerifyRequestSchema,
} from '../../../core/contracts';
import { PgferryError } from '../../../core/errors';
import { backupObjectKey, backupPrefix, databaseSegment, newBackupId } from '../../../core/store-keys';

function onlyValidationErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PgferryError);
    expect((err as PgferryError).code).toBe('InvalidInput');
    expect((err as Error).message).not.toMatch(/[\n\r\u2028\u2029]/);
    expect((err as Error).message.length).toBeLessThan(1200);
  }
}

const requestSchemas: [string, z.ZodType<unknown>][] = [
  ['backup request', BackupRequestSchema],
  ['restore request', RestoreRequestSchema],
  ['verify request', VerifyRequestSchema],
];

test.each(requestSchemas)(
  'a random %s is accepted or refused with one readable validation error',
  (what, schema) => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 4 }), (input) =>
        onlyValidationErrors(() => parsePayload(schema, input, what)),
      ),
      { numRuns: 500 },
    );
  },
);

test('a database name becomes exactly one path segment that never climbs out of the store', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (name) =>
      onlyValidationErrors(() => {
        const segment = databaseSegment(name);
        expect(segment).not.toMatch(/[/\\\0]/);
        expect(segment).not.toMatch(/^\.\.?$/);
        expect(segment.startsWith('.')).toBe(false);
        const prefix = backupPrefix(name, newBackupId());
        expect(prefix.startsWith(`${segment}/`)).toBe(true);
      }),
    ),
    { numRuns: 2000 },
  );
});

test('object keys are refused unless they are plain names inside the backup folder', () => {
  const id = newBackupId();
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (database, name) =>
      onlyValidationErrors(() => {
        const key = backupObjectKey(database, id, name);
        expect(key.startsWith(`${databaseSegment(database)}/${id}/`)).toBe(true);
        expect(key.split('/')).toHaveLength(3);
        expect(key.split('/').some((part) => part === '..' || part === '.')).toBe(false);
      }),
    ),
    { numRuns: 2000 },
  );
});

test.each(requestSchemas)(
  'a random %s with keys and strings of any characters is refused in one short line',
  (what, schema) => {
    const text = fc.string({ unit: 'binary', maxLength: 300 });
    fc.assert(
      fc.property(
        fc.anything({
          maxDepth: 3,
          key: text,
          values: [text, fc.integer(), fc.boolean(), fc.constant(null)],
        }),
        (input) => onlyValidationErrors(() => parseExecutionInput(schema, input, what)),
      ),
      { numRuns: 500 },
    );
  },
);

test.each(requestSchemas)(
  'a %s larger than Step Functions accepts is refused before validation, naming its size',
  (what, schema) => {
    const input = { store: 'x'.repeat(MAX_EXECUTION_INPUT_BYTES) };
    expect(() => parseExecutionInput(schema, input, what)).toThrow(
      new RegExp(`^invalid ${what}: 262\\d{3} bytes of JSON, more than the 262144 Step Functions accepts$`),
    );
  },
);

/** The hostile backup ids and database names of issue 8, as state input. */
const HOSTILE = [
  '../../../etc/passwd',
  '/etc/passwd',
  'a/b',
  'a\0b',
  `x'"; DROP DATABASE postgres; --`,
  'x'.repeat(100_000),
];

test.each(HOSTILE.map((id) => [JSON.stringify(id.slice(0, 20)), id]))(
  'the backup id %s is refused by every workflow input that takes one',
  (_, id) => {
    const inputs: [string, z.ZodType<unknown>, unknown][] = [
      [
        'backup request',
        BackupRequestSchema,
        { source: { host: 'h', port: 5432, database: 'd', user: 'u' }, store: 'file:///s', backupId: id },
      ],
      [
        'restore request',
        RestoreRequestSchema,
        { store: 'file:///s', backup: id, target: { host: 'h', port: 5432, database: 'd', user: 'u' } },
      ],
      ['verify request', VerifyRequestSchema, { store: 'file:///s', backup: id }],
    ];
    for (const [what, schema, input] of inputs) {
      expect(() => parseExecutionInput(schema, input, what)).toThrow(
        /^invalid \w+ request: (backupId|backup): /,
      );
    }
  },
);

test.each(HOSTILE.map((name) => [JSON.stringify(name.slice(0, 20)), name]))(
  'the database name %s is refused or kept inside its own folder',
  (_, name) => {
    onlyValidationErrors(() => {
      const key = backupObjectKey(name, newBackupId(), 'manifest.json');
      const [segment, ...rest] = key.split('/');
      expect(rest).toHaveLength(2);
      expect(segment).toMatch(/^[A-Za-z0-9_%-][A-Za-z0-9_.%-]*$/);
      expect(decodeURIComponent(segment)).toBe(name);
    });
  },
);

/** The backup Preflight is given the execution input beside the execution id (from the context object). */
const withExecutionId = (request: unknown) => ({ request, executionId: 'arn:local:execution:1' });
const asIs = (request: unknown) => request;

test.each([
  ['backup', '../../../lambdas/backup/preflight/handler', withExecutionId],
  ['restore', '../../../lambdas/restore/preflight/handler', asIs],
  ['verify', '../../../lambdas/verify/preflight/handler', asIs],
])(
  "the %s workflow's first state (its handler) refuses garbage and oversized input in one line",
  async (name, module, event) => {
    process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
    const { handler } = (await import(module)) as { handler: (event: unknown) => Promise<unknown> };
    for (const input of [null, 'text', [1], {}, { store: 'x'.repeat(MAX_EXECUTION_INPUT_BYTES) }]) {
      const failure = await handler(event(input)).then(
        () => new Error('accepted'),
        (err: Error) => err,
      );
      expect(failure).toBeInstanceOf(PgferryError);
      expect(failure.message).toMatch(new RegExp(`^invalid ${name} request: [^\\n]+$`));
    }
  },
);
