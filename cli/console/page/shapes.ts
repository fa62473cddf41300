/**
 * What the console's own read-only routes answer (cli/console/site.ts builds them, the page
 * reads them): one home for both. The page is a classic script, so it names these with
 * `import('./shapes')` types, which leave no `import` in its output.
 */

/** One backup as the console's lists show it: the manifest's facts without its table list. */
export interface ConsoleBackupRow {
  id: string;
  database: string;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  storedBytes: number;
  uncompressedBytes: number;
  serverVersion: string;
  tier: string;
  origin: string;
  verification: { status: 'passed' | 'failed'; finishedAt: string } | null;
  setId: string | null;
}

/** One catalog name of the summary. */
export interface ConsoleDatabase {
  database: string;
  backups: number;
  storedBytes: number;
  newest: ConsoleBackupRow | null;
  newestVerified: { id: string; startedAt: string; verifiedAt: string } | null;
  unreadable: number;
}
