/**
 * Random input against the input schemas and the store-key functions: nothing but a validation
 * error (never a crash of another kind), and never a key outside its database's folder.
 */
import fc from 'fast-check';
import type { z } from 'zod';
import {
  BackupRequestSchema,
  parsePayload,
  RestoreRequestSchema,
  VerifyRequestSchema,
} from '../../core/contracts';
import { PgferryError } from '../../core/errors';
import { backupObjectKey, backupPrefix, databaseSegment, newBackupId } from '../../core/store-keys';

function onlyValidationErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PgferryError);
    expect((err as PgferryError).code).toBe('InvalidInput');
    expect((err as Error).message).not.toContain('\n');
  }
}

test.each<[string, z.ZodType<unknown>]>([
  ['backup request', BackupRequestSchema],
  ['restore request', RestoreRequestSchema],
  ['verify request', VerifyRequestSchema],
])('a random %s is accepted or refused with one readable validation error', (what, schema) => {
  fc.assert(
    fc.property(fc.anything({ maxDepth: 4 }), (input) =>
      onlyValidationErrors(() => parsePayload(schema, input, what)),
    ),
    { numRuns: 500 },
  );
});

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
