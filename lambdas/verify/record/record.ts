import type { VerifyOutcome, VerifyReport, VerifyState } from '../../../core/contracts';
import { VerifyReportSchema } from '../../../core/contracts';
import { verifyOutcome } from '../../../core/outcomes';
import type { BackupStore } from '../../../core/store';
import { verifyReportKey } from '../../../core/store-keys';
import { reportOrFailure } from '../../../core/task-report';

/**
 * The verify workflow's record step: the verification's report, which the runner stored beside
 * the backup, and the execution's output (`VerifyOutcome`, naming the report) — or the failure
 * the report (or the caught error) names.
 */
export async function recordVerification(
  state: VerifyState,
  deps: { openStore: (url: string) => BackupStore },
): Promise<{ report: VerifyReport; outcome: VerifyOutcome }> {
  const store = deps.openStore(state.job.store);
  const key = verifyReportKey(state.database, state.backupId, state.verifyId);
  const report = await reportOrFailure(store, key, VerifyReportSchema, 'verification', state.error);
  return { report, outcome: verifyOutcome(report, { store: store.url, key }) };
}
