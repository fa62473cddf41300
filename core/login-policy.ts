/**
 * What an execution may do with the deployment's logins, on AWS: the refusals every preflight and
 * the pg-tools runner make before they connect, read a secret or write anything. Locally (no
 * bindings: the CLI holds the passwords) nothing here refuses anything.
 *
 * On AWS a connection must be one the configuration binds (core/bindings.ts):
 * - its login (the `passwordSecretArn`, or the IAM token) is used only with the server, port,
 *   database and user it is configured for — never sent to another host;
 * - it is authenticated TLS: `verify-full`, or `verify-ca`, against the RDS certificate authorities
 *   the deployment trusts (no `sslrootcert` of the request's choosing), and not weaker than the
 *   configured sslmode;
 * - what it is used for is configured: a restore or migration writes only into a target
 *   (`target: true`; any database of its server with `anyDatabase`), a migration reads only a
 *   configured database (`source: true`). A backup may read any configured login's own database,
 *   a target's too: a clean restore backs its target up first.
 * - a migration's cutover scales only the ECS services configured for its target.
 */
import { type CutoverEcsService, type DatabaseBinding, memberCatalogName } from './bindings';
import { describeConnection } from './connection';
import type { BackupPlan, Connection, MigratePlan, RestorePlan } from './contracts';
import type { Deployment } from './deployment';
import { PgferryError } from './errors';

/** What a connection is for: what its binding must allow. */
export type LoginUse = 'backup' | 'migrate-source' | 'restore-target' | 'migrate-target';

const USE_WORDS: Record<LoginUse, string> = {
  backup: 'backed up',
  'migrate-source': 'migrated from (a configured database)',
  'restore-target': 'restored into (a target)',
  'migrate-target': 'migrated into (a target)',
};

function refuse(message: string): never {
  throw new PgferryError('NotConfigured', message);
}

/** `user@host:port/database` of a binding, with its id. */
function describeBinding(binding: DatabaseBinding): string {
  const database = binding.anyDatabase ? '*' : binding.database;
  return `"${binding.id}" (${binding.user}@${binding.host}:${binding.port}/${database})`;
}

/** Host names compare without case and without a trailing dot, as DNS does. */
function sameHost(a: string, b: string): boolean {
  return a.toLowerCase().replace(/\.$/, '') === b.toLowerCase().replace(/\.$/, '');
}

function sameLogin(binding: DatabaseBinding, connection: Connection): boolean {
  return connection.iamAuth === true
    ? binding.iamAuth === true
    : binding.passwordSecretArn !== undefined && binding.passwordSecretArn === connection.passwordSecretArn;
}

function sameServer(binding: DatabaseBinding, connection: Connection, use: LoginUse): boolean {
  const anyDatabase =
    (binding.anyDatabase && (use === 'restore-target' || use === 'migrate-target')) ||
    // A server entry's login backs up every database of its server (each under its member name).
    (binding.allDatabases === true && use === 'backup');
  return (
    sameHost(binding.host, connection.host) &&
    binding.port === connection.port &&
    binding.user === connection.user &&
    (anyDatabase || binding.database === connection.database)
  );
}

function mayBeUsedFor(binding: DatabaseBinding, use: LoginUse): boolean {
  switch (use) {
    case 'backup':
      return true;
    case 'migrate-source':
      return binding.source;
    case 'restore-target':
    case 'migrate-target':
      return binding.target;
  }
}

/**
 * The binding `connection` is allowed to use for `use` on AWS; `undefined` locally. Anything else
 * is refused with one line naming what the configuration allows instead.
 */
export function allowedLogin(
  deployment: Deployment,
  connection: Connection,
  use: LoginUse,
): DatabaseBinding | undefined {
  if (!deployment.onAws) return undefined;
  const where = describeConnection(connection);
  const login = connection.iamAuth
    ? 'its IAM token'
    : connection.passwordSecretArn
      ? `secret ${connection.passwordSecretArn}`
      : undefined;
  if (login === undefined) {
    refuse(
      `${where} names no login: on AWS a connection logs in with its configured secret (passwordSecretArn) or RDS IAM token (iamAuth)`,
    );
  }
  if (connection.sslmode !== 'verify-full' && connection.sslmode !== 'verify-ca') {
    refuse(
      `sslmode ${connection.sslmode} refused for ${where}: on AWS a password or token is sent only over TLS that proves the server ` +
        '(sslmode verify-full, or verify-ca), checked against the RDS certificate authorities: use sslmode verify-full',
    );
  }
  if (connection.sslrootcert !== undefined) {
    refuse(
      `sslrootcert refused for ${where}: on AWS the server is checked against the RDS certificate authorities the deployment trusts, not a file the request names`,
    );
  }
  const sameLogins = deployment.bindings.bindings.filter((b) => sameLogin(b, connection));
  if (sameLogins.length === 0) {
    refuse(
      `${login} is not configured for any database or target of this deployment, so it is not used for ${where}: ` +
        'configure the database (databases[] or targets[]) and deploy',
    );
  }
  const servers = sameLogins.filter((b) => sameServer(b, connection, use));
  const writes = use === 'restore-target' || use === 'migrate-target';
  if (
    servers.length === 0 &&
    writes &&
    sameLogins.some((b) => sameServer({ ...b, database: connection.database }, connection, use))
  ) {
    // The login's own server and user, another database: one that is not a configured target.
    refuse(
      `${where} is not configured to be ${USE_WORDS[use]}: configure it in targets[] (or set restoreTarget: true on the database) and deploy`,
    );
  }
  if (servers.length === 0) {
    const configured = sameLogins.map(describeBinding).join(', ');
    refuse(
      `${login} is configured for ${configured}, not for ${where}: on AWS a login is used only with the server, port, database and user it is configured for`,
    );
  }
  const allowed = servers.find((b) => mayBeUsedFor(b, use));
  if (!allowed) {
    const hint = writes
      ? 'configure it in targets[] (or set restoreTarget: true on the database) and deploy'
      : 'configure it in databases[] and deploy';
    refuse(`${where} is not configured to be ${USE_WORDS[use]}: ${hint}`);
  }
  if (allowed.sslmode === 'verify-full' && connection.sslmode !== 'verify-full') {
    refuse(
      `sslmode ${connection.sslmode} refused for ${where}: ${describeBinding(allowed)} is configured with verify-full`,
    );
  }
  return allowed;
}

/** On AWS, a migration into `target` may scale only the ECS services configured for it. */
export function checkCutoverServices(
  target: DatabaseBinding | undefined,
  services: readonly { cluster: string; service: string }[],
): void {
  if (!target) return;
  const configured = (s: CutoverEcsService) => `${s.cluster}/${s.service}`;
  const allowed = new Set(target.cutoverEcsServices.map(configured));
  const refused = services.filter((s) => !allowed.has(configured(s)));
  if (refused.length > 0) {
    refuse(
      `cutover.ecsServices ${refused.map(configured).join(', ')} not configured for target "${target.id}" ` +
        `(its cutoverEcsServices: ${[...allowed].join(', ') || 'none'}): configure them and deploy`,
    );
  }
}

/** What the pg-tools runner was asked to do, with the plan its job holds. */
export type RunnerJob =
  | { kind: 'backup'; plan: BackupPlan }
  | { kind: 'restore'; plan: RestorePlan }
  | { kind: 'verify' }
  | { kind: 'migrate'; plan: MigratePlan };

/**
 * The runner's own check of the plan it loaded, before it connects or writes anything: the same
 * refusals as its preflight, so that a job in the store that no preflight made (written by hand
 * or by anything else that may write there) cannot send a login elsewhere. A backup is filed only
 * under its source's configured id. Verification connects to nothing configured.
 */
export function checkRunnerJob(deployment: Deployment, job: RunnerJob): void {
  if (!deployment.onAws) return;
  switch (job.kind) {
    case 'backup': {
      const binding = allowedLogin(deployment, job.plan.source, 'backup');
      checkFiledUnder(binding, job.plan.database, job.plan.source.database);
      return;
    }
    case 'restore':
      allowedLogin(deployment, job.plan.request.target, 'restore-target');
      return;
    case 'verify':
      return;
    case 'migrate': {
      allowedLogin(deployment, job.plan.request.source, 'migrate-source');
      const target = allowedLogin(deployment, job.plan.request.target, 'migrate-target');
      checkCutoverServices(target, job.plan.request.cutover?.ecsServices ?? []);
      for (const db of job.plan.databases) {
        checkFiledUnder(allowedLogin(deployment, db.source, 'migrate-source'), db.backup.database);
        allowedLogin(deployment, db.target, 'migrate-target');
      }
      return;
    }
  }
}

/**
 * On AWS a backup is filed under its source's configured id, and no other name; a server entry's
 * member (`database` of a binding with `allDatabases`) under `<id>.<database>`.
 */
export function checkFiledUnder(binding: DatabaseBinding | undefined, name: string, database?: string): void {
  if (!binding) return;
  const expected = filedUnder(binding, database ?? binding.database);
  if (expected !== name) {
    refuse(
      `on AWS the backups of ${binding.user}@${binding.host}:${binding.port}/${database ?? binding.database} are filed under "${expected}", not "${name}"`,
    );
  }
}

/** The catalog name a backup of `database` through `binding` is filed under on AWS. */
export function filedUnder(binding: DatabaseBinding, database: string): string {
  return binding.allDatabases ? memberCatalogName(binding.id, database) : binding.id;
}
