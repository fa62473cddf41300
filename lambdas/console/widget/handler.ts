/**
 * The dashboard's backups widget: CloudWatch invokes it (with the viewer's credentials) with
 * `widgetContext`, and shows the HTML it returns. Reads the store's catalog only.
 */
import { z } from 'zod';
import {
  CONSOLE_FUNCTION_ENV,
  currentConsoleDeployment,
  RUNBOOK_KINDS,
  type RunbookKind,
} from '../../../core/console-deployment';
import { parsePayload } from '../../../core/contracts';
import { StoreUrlSchema } from '../../../core/contracts/shared';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { renderWidget, widgetData } from './backups-widget';

const deployment = currentConsoleDeployment();
const store = openStore(
  parsePayload(StoreUrlSchema, process.env[CONSOLE_FUNCTION_ENV.store], CONSOLE_FUNCTION_ENV.store),
);
const runbooks = parsePayload(
  z
    .object(
      Object.fromEntries(RUNBOOK_KINDS.map((k) => [k, z.string().min(1)])) as Record<
        RunbookKind,
        z.ZodString
      >,
    )
    .partial(),
  JSON.parse(process.env[CONSOLE_FUNCTION_ENV.runbooks] ?? '{}'),
  CONSOLE_FUNCTION_ENV.runbooks,
);
const region = process.env.AWS_REGION ?? 'us-east-1';
const logger = createLogger('pgferry-backups-widget');

/** What CloudWatch sends: `describe` (the widget's documentation) or `widgetContext`. */
const EventSchema = z
  .object({
    describe: z.boolean().optional(),
    widgetContext: z
      .object({ theme: z.enum(['light', 'dark']).optional() })
      .loose()
      .optional(),
  })
  .loose();

export async function handler(event: unknown): Promise<string> {
  const parsed = EventSchema.safeParse(event);
  const request = parsed.success ? parsed.data : {};
  if (request.describe) {
    return "pgferry's backups: every configured database's newest backup, its verification and its last 30 days, with links to its runbooks. No parameters.";
  }
  const now = new Date();
  const data = await widgetData(
    store,
    deployment.databases.map((d) => ({ id: d.id, alarmAfterHours: d.alarmAfterHours })),
    now,
  );
  logger.info('rendered', { databases: data.rows.length, others: data.others.length });
  return renderWidget(data, { now, region, runbooks, theme: request.widgetContext?.theme });
}
