import { BackupPlanSchema, parsePayload } from '../../core/contracts';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { recordBackup } from './record';

const logger = createLogger('pgferry-record');

/** Step Functions task: writes the manifest of a finished dump; its output is the manifest. */
export async function handler(event: unknown) {
  const plan = parsePayload(BackupPlanSchema, event, 'backup plan');
  const manifest = await recordBackup(plan, { openStore });
  logger.info('recorded', {
    backupId: manifest.id,
    database: manifest.database,
    objects: manifest.objects.length,
  });
  return manifest;
}
