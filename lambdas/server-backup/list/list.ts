import { disappearedSince, listSetDatabases, previousSet } from '../../../core/backup-set';
import { memberCatalogName } from '../../../core/bindings';
import { resolvePassword } from '../../../core/connection';
import {
  type BackupRequest,
  BackupRequestSchema,
  MAX_SET_DATABASES,
  parsePayload,
  type ServerBackupRequest,
  type ServerSetState,
} from '../../../core/contracts';
import { currentDeployment, type Deployment } from '../../../core/deployment';
import { PgferryError } from '../../../core/errors';
import { allowedLogin } from '../../../core/login-policy';
import type { BackupStore } from '../../../core/store';
import { newBackupId } from '../../../core/store-keys';

export interface ListServerDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Where this runs (on AWS: the configuration's bindings). */
  deployment?: Deployment;
}

/**
 * The server backup's first step: on AWS, refuses a server that is not a configured server entry
 * (before its secret is read); lists the server's databases now — one created yesterday is in
 * tonight's set — and compares them with the server's previous set (`disappeared`); and returns
 * one backup workflow input per selected database, filed under `<entry id>.<database>` on AWS
 * (locally under the database's name), for the Map to back up `parallel` at once.
 */
export async function listServer(
  request: ServerBackupRequest,
  deps: ListServerDeps,
): Promise<ServerSetState> {
  const deployment = deps.deployment ?? currentDeployment();
  const binding = allowedLogin(deployment, request.source, 'backup');
  if (binding && (!binding.allDatabases || binding.id !== request.name)) {
    throw new PgferryError(
      'NotConfigured',
      binding.allDatabases
        ? `the server ${binding.host}:${binding.port} is the server entry "${binding.id}", not "${request.name ?? '(none)'}": name it`
        : `${binding.host}:${binding.port} is configured as the database "${binding.id}", not as a server entry (servers[]): on AWS only a server entry's databases are backed up as a set`,
    );
  }
  const started = deps.now?.() ?? new Date();
  const password = await resolvePassword(request.source, 'source', deps.env);
  const { server, databases, all } = await listSetDatabases(request.source, password, request.selection);
  if (databases.length > MAX_SET_DATABASES) {
    throw new PgferryError(
      'InvalidInput',
      `${request.source.host}:${request.source.port} has ${databases.length} selected databases, more than the ${MAX_SET_DATABASES} one server backup takes: split it into server entries with include patterns (or exclude some)`,
    );
  }
  const store = deps.openStore(request.store);
  // A store not made yet (a local folder the first member's preflight creates) has no set.
  const previous = await previousSet(store, request.name, request.source).catch((err: unknown) => {
    if (err instanceof PgferryError && err.code === 'StoreNotWritable') return undefined;
    throw err;
  });
  const setId = newBackupId(started);
  const members = databases.map(
    (database): BackupRequest =>
      parsePayload(
        BackupRequestSchema,
        {
          ...(request.name === undefined ? {} : { name: memberCatalogName(request.name, database) }),
          source: { ...request.source, database },
          store: request.store,
          compression: request.compression,
          withRolePasswords: request.withRolePasswords,
          ...(request.lockWaitTimeoutMs === undefined
            ? {}
            : { lockWaitTimeoutMs: request.lockWaitTimeoutMs }),
          origin: 'set',
          setId,
          // Locally the members backed up at once share this machine's cores: one pg_dump each (on
          // AWS each has a task, and its vCPUs, of its own).
          ...(deployment.onAws || request.parallel <= 1 ? {} : { jobs: 1 }),
        },
        'member backup request',
      ),
  );
  return {
    set: {
      setId,
      startedAt: started.toISOString(),
      request,
      server,
      disappeared: disappearedSince(previous, all),
    },
    members,
    parallel: request.parallel,
  };
}
