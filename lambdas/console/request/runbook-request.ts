/**
 * A runbook's form, as the workflow's request: the runbook (lib/runbooks.ts) passes the ids its
 * caller chose and this builds the execution input from the deployment's own entries, so that
 * the caller picks a configured database and target but never writes a connection, a secret's
 * ARN or a guard rail (`force`, `safetyBackup`) — none of them is a parameter.
 */
import { z } from 'zod';
import type { ConsoleDeployment } from '../../../core/console-deployment';
import {
  BackupRequestSchema,
  MigrateRequestSchema,
  parsePayload,
  RestoreRequestSchema,
  VerifyRequestSchema,
} from '../../../core/contracts';
import { PgferryError } from '../../../core/errors';

const Id = z.string().min(1).max(40);
const Backup = z.string().min(1).max(64);
/** SSM passes a Boolean or Integer parameter substituted into a string map as its text. */
const Flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);
const Count = z
  .union([
    z.number(),
    z
      .string()
      .regex(/^\d{1,5}$/)
      .transform(Number),
  ])
  .pipe(z.number().int().min(0).max(10_000));

/** What each runbook passes (its parameters, lib/runbooks.ts `InputPayload`). */
export const RunbookParametersSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('backup'), database: Id }).strict(),
  z.object({ kind: z.literal('verify'), database: Id, backup: Backup }).strict(),
  z
    .object({
      kind: z.literal('restore'),
      database: Id,
      target: Id,
      backup: Backup,
      mode: z.enum(['create', 'clean']),
    })
    .strict(),
  z
    .object({
      kind: z.literal('migrate'),
      database: Id,
      target: Id,
      cutover: z.enum(['none', 'ecs-services']),
      cutoverDesiredCount: Count,
      freezeSource: Flag,
    })
    .strict(),
]);
export type RunbookParameters = z.input<typeof RunbookParametersSchema>;

function notConfigured(what: string, id: string, configured: string[]): PgferryError {
  return new PgferryError(
    'NotConfigured',
    `${what} ${JSON.stringify(id)} is not configured (configured: ${configured.join(', ') || 'none'}): configure it and deploy`,
  );
}

/**
 * The execution input of the workflow a runbook starts, checked by the workflow's own request
 * schema; a database or target the deployment does not configure, or a mode it does not offer,
 * is refused with one line.
 */
export function runbookRequest(deployment: ConsoleDeployment, store: string, event: unknown): unknown {
  const params = parsePayload(RunbookParametersSchema, event, 'runbook parameters');
  const db = deployment.databases.find((d) => d.id === params.database);
  if (!db)
    throw notConfigured(
      'database',
      params.database,
      deployment.databases.map((d) => d.id),
    );
  switch (params.kind) {
    case 'backup':
      return parsePayload(
        BackupRequestSchema,
        { ...db.backup, store, name: db.id, origin: 'manual' },
        'backup request',
      );
    case 'verify':
      return parsePayload(
        VerifyRequestSchema,
        { store, backup: params.backup, name: db.id },
        'verify request',
      );
    case 'restore': {
      if (params.mode === 'clean' && !deployment.offers.cleanRestore) {
        throw new PgferryError(
          'NotConfigured',
          'a restore in clean mode needs an approver: configure console.approvers and deploy',
        );
      }
      return parsePayload(
        RestoreRequestSchema,
        {
          store,
          backup: params.backup,
          name: db.id,
          target: targetConnection(deployment, params.target),
          mode: params.mode,
        },
        'restore request',
      );
    }
    case 'migrate': {
      const target = deployment.targets.find((t) => t.id === params.target);
      if (!target)
        throw notConfigured(
          'target',
          params.target,
          deployment.targets.map((t) => t.id),
        );
      let cutover: { ecsServices: { cluster: string; service: string; desiredCount: number }[] } | undefined;
      if (params.cutover === 'ecs-services') {
        if (!deployment.offers.cutover) {
          throw new PgferryError(
            'NotConfigured',
            'a migration with cutover needs an approver: configure console.approvers and deploy',
          );
        }
        if (target.cutoverEcsServices.length === 0) {
          throw new PgferryError(
            'NotConfigured',
            `target ${JSON.stringify(target.id)} has no cutoverEcsServices: configure them and deploy, or choose cutover none`,
          );
        }
        cutover = {
          ecsServices: target.cutoverEcsServices.map((s) => ({
            ...s,
            desiredCount: params.cutoverDesiredCount,
          })),
        };
      }
      const source = db.backup.source;
      return parsePayload(
        MigrateRequestSchema,
        {
          name: db.id,
          source,
          target: target.connection,
          store,
          freezeSource: params.freezeSource,
          ...(cutover ? { cutover } : {}),
        },
        'migrate request',
      );
    }
  }
}

/** A restore target's connection: a target, or a database configured with `restoreTarget`. */
function targetConnection(deployment: ConsoleDeployment, id: string): unknown {
  const target = deployment.targets.find((t) => t.id === id);
  if (target) return target.connection;
  const db = deployment.databases.find((d) => d.id === id && d.restoreTarget);
  if (db) return db.backup.source;
  throw notConfigured('target', id, [
    ...deployment.targets.map((t) => t.id),
    ...deployment.databases.filter((d) => d.restoreTarget).map((d) => d.id),
  ]);
}
