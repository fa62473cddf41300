/** Receiving a payload: validation with one readable line per refusal, and Step Functions' size limit. */
import type { z } from 'zod';
import { PgferryError } from '../errors';

/** Parses a payload, turning schema errors into one readable line naming the payload. */
export function parsePayload<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 5)
    .map((issue) => readable(`${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`))
    .join('; ');
  throw new PgferryError('InvalidInput', `invalid ${what}: ${issues}`);
}

/**
 * One short line of an issue: issues may quote the input (an unknown key), which may hold
 * control characters or be very long.
 */
function readable(text: string, max = 200): string {
  let line = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    const control = code < 0x20 || code === 0x7f || code === 0x2028 || code === 0x2029;
    line += control ? `\\u${code.toString(16).padStart(4, '0')}` : c;
    if (line.length > max) return `${line.slice(0, max)}…`;
  }
  return line;
}

/** Step Functions' limit on an execution's input (and every state's), in bytes of JSON. */
export const MAX_EXECUTION_INPUT_BYTES = 256 * 1024;

/**
 * Parses a workflow's execution input in its first state. Larger input than Step Functions
 * accepts is refused before validation (so locally, where nothing else limits it, the same input
 * fails as on AWS, and a huge payload is never walked); then as `parsePayload`.
 */
export function parseExecutionInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  } catch {
    throw new PgferryError('InvalidInput', `invalid ${what}: not JSON`);
  }
  if (bytes > MAX_EXECUTION_INPUT_BYTES) {
    throw new PgferryError(
      'InvalidInput',
      `invalid ${what}: ${bytes} bytes of JSON, more than the ${MAX_EXECUTION_INPUT_BYTES} Step Functions accepts`,
    );
  }
  return parsePayload(schema, value, what);
}
