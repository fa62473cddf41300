/**
 * The payloads that cross a boundary — CLI → state machine, state → state, state machine →
 * container, container → record step, and the manifest in the store — typed once, here, and
 * validated with zod wherever they are received. None of them ever carries a password.
 *
 * - `shared.ts`: the pieces every payload is made of (ids, names, the store's URL, a connection,
 *   compression, the task's size, the job reference, the schema version).
 * - `database.ts`: what is recorded about a database to make one like it (locale, requirements,
 *   properties).
 * - `backup.ts`, `restore.ts`, `verify.ts`, `migrate.ts`: each workflow's request, plan, state,
 *   output, and the document it stores (the manifest, the reports).
 * - `parse.ts`: receiving a payload.
 *
 * Their wire formats are pinned by test/unit/core/contracts/contracts.test.ts.
 */
export type {
  BackupManifest,
  BackupOrigin,
  BackupOutcome,
  BackupPlan,
  BackupRequest,
  BackupRequestInput,
  BackupScope,
  BackupState,
  BackupTable,
  DumpResult,
  DumpStrategy,
  StoredObject,
  TaskPlacement,
} from './backup';
export {
  BACKUP_ORIGINS,
  BackupManifestSchema,
  BackupOriginSchema,
  BackupOutcomeSchema,
  BackupPlanSchema,
  BackupRequestSchema,
  BackupScopeSchema,
  BackupStateSchema,
  BackupTableSchema,
  DumpResultSchema,
  DumpStrategySchema,
  GlobalsInfoSchema,
  originOf,
  StoredObjectSchema,
  TaskPlacementSchema,
  ToolInfoSchema,
} from './backup';
export type {
  BackupSetManifest,
  ServerBackupOutcome,
  ServerBackupRequest,
  ServerBackupRequestInput,
  ServerSetState,
  SetFailure,
  SetMember,
  SetMemberResult,
  SetSelection,
} from './backup-set';
export {
  BackupSetManifestSchema,
  MAX_SET_DATABASES,
  ServerBackupOutcomeSchema,
  ServerBackupRequestSchema,
  ServerRecordInputSchema,
  ServerSetStateSchema,
  SetFailureSchema,
  SetMemberResultSchema,
  SetMemberSchema,
  SetSelectionSchema,
} from './backup-set';
export type {
  CollationRequirement,
  ColumnRef,
  DatabaseLocale,
  DatabaseProperties,
  LocaleProvider,
  Requirements,
} from './database';
export {
  CollationRequirementSchema,
  ColumnRefSchema,
  DatabaseLocaleSchema,
  DatabasePropertiesSchema,
  LocaleProviderSchema,
  RequirementsSchema,
} from './database';
export type {
  Cutover,
  FreezeResult,
  MigrateDatabasePlan,
  MigrateDatabaseResult,
  MigrateEstimate,
  MigrateOutcome,
  MigratePlan,
  MigrateReport,
  MigrateRequest,
  MigrateRequestInput,
  MigrateState,
  MigrateSteps,
  OnlineCutover,
  ReportedSchemaTest,
  SchemaTestDecision,
  SchemaTestResult,
} from './migrate';
export {
  CutoverSchema,
  FreezeResultSchema,
  MigrateDatabasePlanSchema,
  MigrateDatabaseResultSchema,
  MigrateEstimateSchema,
  MigrateOutcomeSchema,
  MigratePlanSchema,
  MigrateReportSchema,
  MigrateRequestSchema,
  MigrateStateSchema,
  MigrateStepsSchema,
  OnlineCutoverSchema,
  ReportedSchemaTestSchema,
  SchemaTestDecisionSchema,
  SchemaTestResultSchema,
  schemaTestDecision,
  WritingSessionSchema,
} from './migrate';
export { MAX_EXECUTION_INPUT_BYTES, parseExecutionInput, parsePayload } from './parse';
export type {
  RestoreCleanup,
  RestoreOutcome,
  RestorePlan,
  RestoreReport,
  RestoreRequest,
  RestoreRequestInput,
  RestoreState,
} from './restore';
export {
  RestoreCleanupSchema,
  RestoreOutcomeSchema,
  RestorePlanSchema,
  RestoreReportSchema,
  RestoreRequestSchema,
  RestoreStateSchema,
} from './restore';
export type {
  CaughtError,
  Compression,
  CompressionCodec,
  Connection,
  JobDocument,
  JobRef,
  SslMode,
  TableRowCount,
  TaskSize,
  ToastCompression,
} from './shared';
export {
  CaughtErrorSchema,
  CompressionCodecSchema,
  CompressionSchema,
  ConnectionSchema,
  DEFAULT_LOCK_WAIT_TIMEOUT_MS,
  JobDocumentSchema,
  JobRefSchema,
  LockWaitTimeoutSchema,
  SCHEMA_VERSION,
  ServerInfoSchema,
  SslModeSchema,
  TableRowCountSchema,
  TaskSizeSchema,
  ToastCompressionSchema,
} from './shared';
export type { VerifyOutcome, VerifyPlan, VerifyReport, VerifyRequest, VerifyState } from './verify';
export {
  VerifyOutcomeSchema,
  VerifyPlanSchema,
  VerifyReportSchema,
  VerifyRequestSchema,
  VerifyStateSchema,
} from './verify';
