import {
  CONSOLE_DEPLOYMENT_VERSION,
  type ConsoleDeployment,
  RUNBOOK_KINDS,
  type RunbookKind,
} from '../core/console-deployment';
import type { BackupRequestInput } from '../core/contracts';
import type { DatabaseConfig, PgferryConfig } from './config';

/**
 * What the console's functions are built with (core/console-deployment.ts): the configured
 * databases with their schedules' backup request (less the store), the targets, and what the
 * runbooks offer — a `clean` restore and a cutover only when approval is off or someone may give it.
 */
export function consoleDeploymentOf(
  config: PgferryConfig,
  backupRequest: (db: DatabaseConfig) => BackupRequestInput,
): ConsoleDeployment {
  const approvable = !config.console.requireApproval || config.console.approvers.length > 0;
  return {
    version: CONSOLE_DEPLOYMENT_VERSION,
    databases: config.databases.map((db) => {
      const { store: _, ...backup } = backupRequest(db);
      return { id: db.id, alarmAfterHours: db.alarmAfterHours, backup, restoreTarget: db.restoreTarget };
    }),
    targets: config.targets.map((t) => ({
      id: t.id,
      connection: t.connection,
      cutoverEcsServices: t.cutoverEcsServices,
    })),
    offers: {
      cleanRestore: approvable,
      cutover: approvable && config.targets.some((t) => t.cutoverEcsServices.length > 0),
    },
  };
}

/**
 * The runbooks the stack deploys, by kind: restores need a target (or a database with
 * `restoreTarget`), migrations a target; backups and verifications are always there.
 */
export function deployedRunbooks(
  stackName: string,
  deployment: ConsoleDeployment,
): Partial<Record<RunbookKind, string>> {
  const names = runbookNames(stackName);
  const restoreTargets =
    deployment.targets.length + deployment.databases.filter((d) => d.restoreTarget).length;
  return Object.fromEntries(
    RUNBOOK_KINDS.filter(
      (kind) =>
        (kind !== 'restore' || restoreTargets > 0) && (kind !== 'migrate' || deployment.targets.length > 0),
    ).map((kind) => [kind, names[kind]]),
  );
}

/** The runbooks' SSM document names: `<stack>-Backup`, `<stack>-Verify`, `<stack>-Restore`, `<stack>-Migrate`. */
export function runbookNames(stackName: string): Record<RunbookKind, string> {
  return Object.fromEntries(
    RUNBOOK_KINDS.map((kind) => [kind, `${stackName}-${kind[0].toUpperCase()}${kind.slice(1)}`]),
  ) as Record<RunbookKind, string>;
}
