import type { Client } from 'pg';
import { backupCatalogName, checkNameBelongsToServer } from '../../../core/catalog-name';
import { describeConnection, resolvePassword } from '../../../core/connection';
import {
  type Connection,
  type DatabaseLocale,
  DEFAULT_LOCK_WAIT_TIMEOUT_MS,
  type MigrateDatabasePlan,
  type MigrateEstimate,
  type MigratePlan,
  MigrateReportSchema,
  type MigrateRequest,
  SCHEMA_VERSION,
  type SchemaTestDecision,
} from '../../../core/contracts';
import { currentDeployment, type Deployment } from '../../../core/deployment';
import { PgferryError } from '../../../core/errors';
import { allowedLogin, checkCutoverServices, checkFiledUnder } from '../../../core/login-policy';
import { connectMaintenance, connectPg, endQuietly, withClient } from '../../../core/postgres/connect';
import { describeIncompleteDatabase, readIncompleteMark } from '../../../core/postgres/incomplete-database';
import {
  availableExtensions,
  connectableDatabases,
  countUserObjects,
  databaseExists,
  databaseSize,
  isStandby,
  readExtensions,
  serverInfo,
  systemIdentifier,
} from '../../../core/postgres/inspect';
import { onlineSourceProblems, onlineTargetProblems } from '../../../core/postgres/logical-replication';
import { readOnlySetting, sessionEndingProblem } from '../../../core/postgres/read-only';
import {
  describeLocale,
  missingForObjects,
  missingToCreateDatabase,
  type ObjectNeeds,
  readCollationRequirements,
  readDatabaseLocale,
  readLz4Columns,
  readLz4Settings,
} from '../../../core/postgres/requirements';
import { chooseToastCompression } from '../../../core/postgres/restore-session';
import type { BackupStore } from '../../../core/store';
import { databaseSegment, MIGRATE_REPORT_FILE, newBackupId } from '../../../core/store-keys';
import { chooseDumpStrategy, defaultJobs, taskCores } from '../../../core/strategy';
import { dumpTaskSize, restoreTaskSize } from '../../../core/task-size';

export interface MigratePreflightDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Where this runs (on AWS: the configuration's bindings). */
  deployment?: Deployment;
}

/**
 * Throughput assumed when the store holds no earlier migration of the database: bytes of source
 * database (`pg_database_size`) moved per second. Measured here on a 634 MB database, a streamed
 * `pg_dump | pg_restore` moved about 40 MB/s; the default is lower, so the estimate errs long.
 */
export const DEFAULT_MIGRATE_BYTES_PER_SECOND = 25 * 1000 * 1000;

/**
 * Everything that can refuse a migration, checked before anything changes: on AWS that the source
 * databases are configured databases and the target a configured target, each login bound to its
 * server, and the cutover's ECS services configured for the target (before any secret is read);
 * each archived backup's catalog name belongs to the source server; both servers answer,
 * a freeze (`freezeSource`, `online`'s cutover) is of a primary whose login may end other sessions,
 * the target is not an older major (a downgrade), every extension the source uses is available
 * on the target, each target database is absent or empty (or `force`), and the target can create
 * a database with the source's encoding and locale and hold its collations and lz4 columns.
 * Plans one archived backup per database and estimates the duration.
 */
export async function preflightMigrate(
  request: MigrateRequest,
  deps: MigratePreflightDeps,
): Promise<MigratePlan> {
  const now = deps.now?.() ?? new Date();
  const deployment = deps.deployment ?? currentDeployment();
  allowedLogin(deployment, request.source, 'migrate-source');
  const targetBinding = allowedLogin(deployment, request.target, 'migrate-target');
  checkCutoverServices(targetBinding, request.cutover?.ecsServices ?? []);
  if (request.name !== undefined && request.allDatabases) {
    refuse("name files one database's archived backup: with allDatabases each is filed under its own name");
  }
  refuseOnlineCombinations(request);
  if (request.cutover?.command !== undefined && deployment.onAws) {
    refuse(
      'cutover.command runs only locally (pgferry migrate --on-cutover); on AWS use cutover.secretArn or cutover.ecsServices',
    );
  }
  const store = deps.openStore(request.store);
  const [sourcePassword, targetPassword] = await Promise.all([
    resolvePassword(request.source, 'source', deps.env),
    resolvePassword(request.target, 'target', deps.env),
  ]);

  const source = await connectPg(request.source, sourcePassword);
  let sourceServer: MigratePlan['sourceServer'];
  let sources: SourceDatabase[];
  let archiveNames: Map<string, string>;
  try {
    sourceServer = await serverInfo(source);
    if (request.freezeSource || request.online) await refuseStandbyFreeze(source, request.source);
    if (request.freezeSource) await refuseSessionEnding(source);
    if (request.online) await refuseOnlineSource(source, request);
    const names = request.allDatabases ? await connectableDatabases(source) : [request.source.database];
    const identifier = await systemIdentifier(source);
    if (identifier !== undefined) sourceServer = { ...sourceServer, systemIdentifier: identifier };
    archiveNames = archiveNamesOf(deployment, request, names);
    // The request's database is described on the session open already; the others' on their own.
    sources = await Promise.all(
      names.map((name) => {
        const connection = { ...request.source, database: name };
        return name === request.source.database
          ? describeSource(source, connection)
          : withClient(connection, sourcePassword, (client) => describeSource(client, connection));
      }),
    );
  } finally {
    await endQuietly(source);
  }
  const archiveName = (src: SourceDatabase) => archiveNames.get(src.connection.database) ?? '';

  const target = await connectMaintenance(request.target, targetPassword);
  let targetServer: MigratePlan['targetServer'];
  let toastCompression: MigratePlan['toastCompression'];
  const databases: MigrateDatabasePlan[] = [];
  try {
    targetServer = await serverInfo(target);
    if (targetServer.major < sourceServer.major) {
      refuse(
        `the target runs PostgreSQL ${targetServer.version}, older than the source's ${sourceServer.version}: ` +
          'a migration never downgrades',
      );
    }
    if (request.online) {
      const problems = await onlineTargetProblems(target, targetServer.major);
      if (problems.length) refuse(`--online: ${problems.join('; ')}`);
    }
    await checkExtensions(target, sources);
    toastCompression = await chooseToastCompression(target, request.toastCompression);
    const cores = taskCores(largerTask(sources.reduce((sum, src) => sum + src.sizeBytes, 0)));
    const startedAt = now.toISOString();
    for (const [i, src] of sources.entries()) {
      const targetConnection = {
        ...request.target,
        database: request.allDatabases ? src.connection.database : request.target.database,
      };
      allowedLogin(deployment, targetConnection, 'migrate-target');
      await checkDatabaseNeeds(target, src);
      const targetExists = await checkTargetDatabase(target, targetConnection, targetPassword, request.force);
      // Ids one second apart keep them unique and ordered within a migration of many databases.
      const backupId = newBackupId(new Date(now.getTime() + i * 1000));
      databases.push({
        source: src.connection,
        target: targetConnection,
        backup: {
          schemaVersion: SCHEMA_VERSION,
          backupId,
          database: archiveName(src),
          store: store.url,
          source: src.connection,
          compression: request.compression,
          withRolePasswords: request.withRolePasswords,
          server: sourceServer,
          minPgDumpMajor: sourceServer.major,
          sizeBytes: src.sizeBytes,
          // A migration's archive is one stream (the copy is written beside it).
          strategy: chooseDumpStrategy(src.sizeBytes, cores, 1),
          taskSize: dumpTaskSize(src.sizeBytes),
          lockWaitTimeoutMs: request.lockWaitTimeoutMs ?? DEFAULT_LOCK_WAIT_TIMEOUT_MS,
          origin: 'migration',
          startedAt,
        },
        sizeBytes: src.sizeBytes,
        encoding: src.encoding,
        locale: src.locale,
        targetExists,
        readOnlySetting: src.readOnlySetting,
      });
    }
  } finally {
    await endQuietly(target);
  }
  await store.checkWritable();
  for (const src of sources) {
    await checkNameBelongsToServer(
      store,
      archiveName(src),
      { ...src.connection, systemIdentifier: sourceServer.systemIdentifier },
      deployment,
    );
  }

  const totalBytes = databases.reduce((sum, d) => sum + d.sizeBytes, 0);
  const single = request.allDatabases ? undefined : request.target;
  return {
    schemaVersion: SCHEMA_VERSION,
    migrateId: newBackupId(now),
    request,
    sourceServer,
    targetServer,
    databases,
    jobs: request.jobs ?? defaultJobs(deps.env),
    toastCompression,
    estimate: await estimate(store, databases[0].backup.database, totalBytes),
    ...(request.cutover?.secretArn && single
      ? { cutoverSecretFields: { host: single.host, port: single.port, dbname: single.database } }
      : {}),
    taskSize: largerTask(totalBytes),
    startedAt: now.toISOString(),
    schemaTest: decideSchemaTest(request, databases),
  };
}

/**
 * Whether the schema test runs: as the request says, else when it protects something. A plain
 * migration into a database it creates tests its schema itself: the migrate task's first step
 * restores the pre-data into that new database (the data waits for it), and its failure drops the
 * database — the test would only add a second runner, a schema-only dump and a scratch database
 * (~0.5–0.9 s before any data moves, docs/benchmark.md). It protects what changes, or is lost,
 * before that step: the source frozen (`freezeSource`); an online migration's publication, slot
 * and replica identities; an existing target database (`force` drops it before recreating it,
 * and a failed migration drops the database it restored into); the first database moved before
 * a later one's schema fails; services scaled down before the migration.
 */
export function decideSchemaTest(
  request: Pick<MigrateRequest, 'schemaTest' | 'freezeSource' | 'online' | 'force' | 'cutover'>,
  databases: readonly Pick<MigrateDatabasePlan, 'target' | 'targetExists'>[],
): SchemaTestDecision {
  if (request.schemaTest === true) return { run: true, reason: 'asked for (schemaTest: true)' };
  if (request.schemaTest === false) return { run: false, reason: 'not asked for (schemaTest: false)' };
  const protects: string[] = [];
  if (request.freezeSource) protects.push('the source is made read-only first (freezeSource)');
  if (request.online) {
    protects.push('an online migration sets up replication on the source first (online)');
  }
  const existing = databases.filter((d) => d.targetExists).map((d) => d.target.database);
  if (existing.length) {
    protects.push(
      `the target database ${existing.join(', ')} exists: ` +
        (request.force ? 'it is dropped and created again (force)' : 'a failed migration would drop it'),
    );
  }
  if (databases.length > 1) {
    protects.push(`${databases.length} databases: a later one's schema could fail after the first moved`);
  }
  const services = request.cutover?.ecsServices ?? [];
  if (services.length) protects.push('services are scaled down first (cutover.ecsServices)');
  if (protects.length) return { run: true, reason: protects.join('; ') };
  return {
    run: false,
    reason:
      'nothing changes before the migration restores the schema into the database it creates, ' +
      'and a failure there drops that database',
  };
}

function refuse(message: string): never {
  throw new PgferryError('TargetRefused', message);
}

/**
 * The catalog name each source database's archived backup is filed under: on AWS the database's
 * configured id (each must be a configured database: refused before it is connected to), locally
 * the request's `name` (one database) or the database's name.
 */
function archiveNamesOf(
  deployment: Deployment,
  request: MigrateRequest,
  databases: readonly string[],
): Map<string, string> {
  const names = new Map<string, string>();
  for (const database of databases) {
    const source = { ...request.source, database };
    allowedLogin(deployment, source, 'migrate-source');
    const { name, binding } = backupCatalogName(deployment, source, undefined);
    if (request.name !== undefined) checkFiledUnder(binding, request.name);
    names.set(database, binding ? name : (request.name ?? name));
  }
  return names;
}

/**
 * A hot standby is read-only already, and cannot be made so: the freeze sets
 * `default_transaction_read_only` on the database, which only its primary can, and the writes the
 * freeze is meant to stop happen on the primary.
 */
async function refuseStandbyFreeze(source: Client, connection: Connection): Promise<void> {
  if (await isStandby(source)) {
    refuse(
      `the source ${describeConnection(connection)} is a standby (in recovery): --freeze-source cannot stop ` +
        "writes there; run the migration against its primary, or without --freeze-source (the target then holds the standby's state at the dump's snapshot)",
    );
  }
}

/**
 * The freeze ends the sessions connected before it (they read no freeze and would go on writing
 * after the dump's snapshot): the source login must be allowed to.
 */
async function refuseSessionEnding(source: Client): Promise<void> {
  const problem = await sessionEndingProblem(source);
  if (problem) refuse(`--freeze-source: ${problem}`);
}

/** What `online` cannot be combined with (yet), and the flags that only `online` takes. */
function refuseOnlineCombinations(request: MigrateRequest): void {
  if (!request.online) {
    if (request.replicaIdentityFull || request.unfreezeSourceAfter) {
      refuse('--replica-identity-full and --unfreeze-source-after are for --online migrations');
    }
    return;
  }
  if (request.allDatabases) refuse('--online migrates one database: without --all-databases');
  if (request.source.iamAuth) {
    refuse(
      "--online needs a password login to the source (passwordSecretArn): the target's subscription keeps " +
        'connecting to the source for the whole migration, and an IAM authentication token expires after 15 minutes',
    );
  }
  if (request.freezeSource) {
    refuse(
      '--online freezes the source for the cutover only; --freeze-source would freeze it for the whole copy: pass one of them',
    );
  }
  if (request.cutover?.ecsServices?.length) {
    refuse(
      "--online with --scale-service: the services' scale-down runs before the copy, which --online keeps writable; not supported yet",
    );
  }
}

/**
 * Everything on the source that refuses an online migration (core/postgres/logical-replication.ts),
 * in one line, before anything is created.
 */
async function refuseOnlineSource(source: Client, request: MigrateRequest): Promise<void> {
  const problems = await onlineSourceProblems(source, {
    database: request.source.database,
    replicaIdentityFull: request.replicaIdentityFull,
  });
  // The cutover's freeze ends the sessions connected before it, as --freeze-source's does.
  const sessionEnding = await sessionEndingProblem(source);
  if (sessionEnding) problems.push(sessionEnding);
  if (problems.length) {
    refuse(`--online cannot migrate ${describeConnection(request.source)}: ${problems.join('; ')}`);
  }
}

interface SourceDatabase {
  connection: Connection;
  sizeBytes: number;
  encoding: string;
  locale: DatabaseLocale;
  /** What its objects need of the target besides the database (collations, lz4). */
  objectNeeds: ObjectNeeds;
  extensions: { name: string; version: string }[];
  readOnlySetting: string | null;
}

/** What the preflight learns of a source database, on a session (`client`) connected to it. */
async function describeSource(client: Client, connection: Connection): Promise<SourceDatabase> {
  const { encoding, locale } = await readDatabaseLocale(client);
  return {
    connection,
    sizeBytes: await databaseSize(client),
    encoding,
    locale,
    objectNeeds: {
      encoding,
      collations: await readCollationRequirements(client),
      lz4Columns: await readLz4Columns(client),
      lz4Settings: await readLz4Settings(client),
    },
    extensions: await readExtensions(client),
    readOnlySetting: await readOnlySetting(client),
  };
}

async function checkExtensions(target: Client, sources: SourceDatabase[]): Promise<void> {
  const available = await availableExtensions(target);
  const missing = new Map<string, string>();
  for (const src of sources) {
    for (const e of src.extensions) {
      if (!available.has(e.name)) missing.set(`${e.name} ${e.version}`, src.connection.database);
    }
  }
  if (missing.size) {
    refuse(
      `the target server does not offer extension${missing.size > 1 ? 's' : ''} the source uses: ` +
        [...missing].map(([ext, db]) => `${ext} (in ${db})`).join(', '),
    );
  }
}

/**
 * The target must be able to create a database like the source's (encoding, locale, provider) and
 * hold what its objects need (collations, lz4), as a restore's preflight checks.
 */
async function checkDatabaseNeeds(target: Client, src: SourceDatabase): Promise<void> {
  const missing = [
    ...(await missingToCreateDatabase(target, src.encoding, src.locale)),
    ...(await missingForObjects(target, src.objectNeeds)),
  ];
  if (missing.length) {
    refuse(
      `the target server cannot hold ${src.connection.database} (${describeLocale(src.encoding, src.locale)}): ` +
        `it lacks ${missing.join('; ')}`,
    );
  }
}

/**
 * Whether the target database exists; refuses one that is not empty, unless forced, and one that
 * pgferry left incomplete, naming the command that removes it.
 */
async function checkTargetDatabase(
  admin: Client,
  target: Connection,
  password: string | undefined,
  force: boolean,
): Promise<boolean> {
  if (!(await databaseExists(admin, target.database))) return false;
  const incomplete = await readIncompleteMark(admin, target.database);
  if (incomplete) {
    refuse(describeIncompleteDatabase(target.database, incomplete, (await serverInfo(admin)).major));
  }
  const objects = await withClient(target, password, countUserObjects);
  if (objects > 0 && !force) {
    refuse(
      `the target database ${describeConnection(target)} exists and is not empty (${objects} objects); ` +
        'pass --force to replace it (it is dropped and created again)',
    );
  }
  return true;
}

function largerTask(bytes: number) {
  const dump = dumpTaskSize(bytes);
  // Only the post-data section is kept on disk.
  const restore = restoreTaskSize({ storedBytes: 0, uncompressedBytes: bytes / 10 }, false);
  return Number(dump.cpu) >= Number(restore.cpu)
    ? { ...dump, ephemeralStorageGiB: restore.ephemeralStorageGiB }
    : restore;
}

/**
 * Duration from size and throughput: the throughput of the newest earlier migration of this
 * database in the store (its report), else `DEFAULT_MIGRATE_BYTES_PER_SECOND`.
 */
async function estimate(store: BackupStore, database: string, bytes: number): Promise<MigrateEstimate> {
  let newest: { key: string; id: string } | undefined;
  for await (const entry of store.list(`${databaseSegment(database)}/`)) {
    const match = MIGRATE_REPORT_FILE.exec(entry.key.slice(entry.key.lastIndexOf('/') + 1));
    if (match && (!newest || match[1] > newest.id)) newest = { key: entry.key, id: match[1] };
  }
  if (newest) {
    const report = MigrateReportSchema.safeParse(await store.getJson(newest.key).catch(() => undefined));
    const seconds = report.success ? report.data.timings.total : 0;
    if (report.success && seconds > 0 && report.data.sizes.sourceBytes > 0) {
      const bytesPerSecond = report.data.sizes.sourceBytes / seconds;
      return { bytes, bytesPerSecond, seconds: bytes / bytesPerSecond, basis: 'measured' };
    }
  }
  const bytesPerSecond = DEFAULT_MIGRATE_BYTES_PER_SECOND;
  return { bytes, bytesPerSecond, seconds: bytes / bytesPerSecond, basis: 'default' };
}
