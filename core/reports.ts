/**
 * Reports of restores and verifications, stored beside the backup they are about
 * (`<database>/<backupId>/<kind>-report-<reportId>.json`, see `reportKey` in store-keys.ts). The
 * catalog reads only what every report has in common; the commands that write them define the
 * rest of their content (e.g. `RestoreReportSchema` in contracts.ts).
 */
import { z } from 'zod';

export const BackupReportSchema = z
  .object({
    kind: z.enum(['restore', 'verify']),
    status: z.enum(['passed', 'failed']),
    finishedAt: z.iso.datetime(),
  })
  .loose();
export type BackupReport = z.infer<typeof BackupReportSchema>;

/** A report as the catalog shows it: its key, and its content when it could be read. */
export interface StoredReport {
  key: string;
  report: BackupReport;
}
