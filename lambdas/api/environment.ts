/**
 * The API function's environment (set by lib/api.ts), read once at start: a missing or malformed
 * variable fails the function's start with one line naming it.
 */
import { z } from 'zod';
import { RUN_KINDS, type RunKind } from '../../api/runs';
import { StoreUrlSchema } from '../../core/contracts/shared';
import { PgferryError } from '../../core/errors';

/** The variables lib/api.ts sets. */
export const API_ENV = {
  /** The deployment's store, `s3://<bucket>/backups`. */
  store: 'PGFERRY_STORE',
  /** Each kind's state machine: `{"backup": "arn:aws:states:…", …}`. */
  stateMachines: 'PGFERRY_STATE_MACHINES',
  /** The path the API is served under (API Gateway's stage, `/api`): links and `Location` begin with it. */
  basePath: 'PGFERRY_API_BASE_PATH',
} as const;

const StateMachineArnSchema = z
  .string()
  .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[\w-]+$/);
const StateMachinesSchema = z.object(
  Object.fromEntries(RUN_KINDS.map((kind) => [kind, StateMachineArnSchema])) as Record<
    RunKind,
    typeof StateMachineArnSchema
  >,
);

export interface ApiEnvironment {
  store: string;
  stateMachineArns: Record<RunKind, string>;
  basePath: string;
}

export function apiEnvironment(env: NodeJS.ProcessEnv): ApiEnvironment {
  const read = <T>(name: string, schema: z.ZodType<T>, parse: (text: string) => unknown): T => {
    const text = env[name];
    if (!text)
      throw new PgferryError(
        'InvalidInput',
        `${name} is not set: the API function is deployed by lib/api.ts`,
      );
    let value: unknown;
    try {
      value = parse(text);
    } catch {
      throw new PgferryError('InvalidInput', `${name} is not JSON: ${text.slice(0, 200)}`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new PgferryError(
        'InvalidInput',
        `${name}: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`,
      );
    }
    return parsed.data;
  };
  return {
    store: read(API_ENV.store, StoreUrlSchema, (text) => text),
    stateMachineArns: read(API_ENV.stateMachines, StateMachinesSchema, JSON.parse),
    basePath: env[API_ENV.basePath] ?? '',
  };
}
