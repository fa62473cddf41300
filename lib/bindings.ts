import { BINDINGS_VERSION, type DatabaseBinding, type DatabaseBindings } from '../core/bindings';
import {
  databaseRetention,
  type PgferryConfig,
  type ServerLoginConfig,
  serverDatabaseRetention,
  serverRetention,
} from './config';

/**
 * The configuration's logins as bindings (core/bindings.ts): each database may be backed up (and,
 * with `restoreTarget`, restored into); each target may be restored and migrated into.
 */
export function bindingsOf(config: PgferryConfig): DatabaseBindings {
  return {
    version: BINDINGS_VERSION,
    bindings: [
      ...config.databases.map((db) => {
        const retention = databaseRetention(config, db);
        return {
          ...binding(db, {
            source: true,
            target: db.restoreTarget,
            anyDatabase: false,
            cutoverEcsServices: [],
          }),
          ...(retention ? { retention } : {}),
          ...(db.availabilityZone ? { availabilityZone: db.availabilityZone } : {}),
        };
      }),
      // A server entry: any database of its server may be backed up, each under `<id>.<database>`.
      ...config.servers.map((server) => {
        const retention = serverRetention(config, server);
        const perDatabase = serverDatabaseRetention(config, server);
        return {
          ...binding(server, { source: true, target: false, anyDatabase: false, cutoverEcsServices: [] }),
          allDatabases: true,
          ...(retention ? { retention } : {}),
          ...(Object.keys(perDatabase).length ? { databaseRetention: perDatabase } : {}),
          ...(server.availabilityZone ? { availabilityZone: server.availabilityZone } : {}),
        };
      }),
      ...config.targets.map((t) =>
        binding(t, {
          source: false,
          target: true,
          anyDatabase: t.anyDatabase,
          cutoverEcsServices: t.cutoverEcsServices,
        }),
      ),
    ],
  };
}

function binding(
  entry: ServerLoginConfig,
  uses: Pick<DatabaseBinding, 'source' | 'target' | 'anyDatabase' | 'cutoverEcsServices'>,
): DatabaseBinding {
  const { connection } = entry;
  return {
    id: entry.id,
    ...uses,
    host: connection.host,
    port: connection.port,
    database: connection.database,
    user: connection.user,
    sslmode: connection.sslmode,
    ...(connection.iamAuth
      ? { iamAuth: true, rdsResourceId: entry.rdsResourceId }
      : { passwordSecretArn: connection.passwordSecretArn }),
  };
}
