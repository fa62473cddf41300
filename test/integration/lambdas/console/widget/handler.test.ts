/**
 * The dashboard's backups widget as `cdk deploy` bundles it (lambdas/console/widget/handler.ts),
 * invoked as CloudWatch invokes a custom widget, reading a store on the S3 server that the test
 * fills with backups (a month of a configured database's, a verification report, an old id's, a
 * hostile catalog name's): its HTML lists every configured database with its freshness, size,
 * duration, verification, 30-day trend and runbook links, escapes every name, and is screenshotted
 * in headless Chromium (test-output/console-aws/; one is docs/images/backups-widget.png).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { chromium } from 'playwright-core';
import type { BackupManifest } from '../../../../../core/contracts';
import { S3Store } from '../../../../../core/store/s3-store';
import { backupObjectKey, manifestKey, newBackupId, verifyReportKey } from '../../../../../core/store-keys';
import { syntheticManifest, writeSyntheticBackup } from '../../../../support/backups';
import { REPO } from '../../../../support/cli';
import { testEnv, uniqueName } from '../../../../support/env';
import { type BundledStack, invokeBundle, synthesizeBundled } from '../../../../support/lambda-bundles';
import { existingVpc } from '../../../../unit/lib/fixtures';

const OUTPUT = path.join(REPO, 'test-output', 'console-aws');
const HOSTILE = `<img src=x onerror=alert(1)>&"'</td><script>x</script>`;
const NOW = Date.now();
const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf';

let bundled: BundledStack;
let env: Record<string, string>;
let html: string;

function database(id: string, alarmAfterHours: number) {
  return {
    id,
    connection: {
      host: `${id}.abc.eu-west-1.rds.amazonaws.com`,
      database: id,
      user: 'pgferry_backup',
      passwordSecretArn: SECRET.replace('shop', id),
    },
    network: { securityGroupId: 'sg-0123456789abcdef0' },
    backupSchedules: [{ cron: '0 2 * * ? *' }],
    alarmAfterHours,
  };
}

beforeAll(async () => {
  bundled = synthesizeBundled({
    vpc: existingVpc(),
    databases: [database('shop', 26), database('billing', 26), database('crm', 26), database('payroll', 26)],
    targets: [
      {
        id: 'drill',
        connection: { ...database('drill', 26).connection },
        network: { securityGroupId: 'sg-0123456789abcdef0' },
      },
    ],
  });
  const s3 = testEnv().s3;
  const prefix = uniqueName('widget');
  const storeUrl = `s3://${s3.bucket}/${prefix}`;
  const store = new S3Store(s3.bucket, prefix, new S3Client(s3.clientConfig()));
  const day = (n: number) => new Date(NOW - n * 86_400_000);
  // shop: a nightly backup for 40 days, growing slower, the newest 3 hours old and verified.
  let newest: BackupManifest | undefined;
  for (let k = 39; k >= 0; k--) {
    newest = await writeGrowingBackup(
      store,
      'shop',
      new Date(NOW - 3 * 3_600_000 - k * 86_400_000),
      1000 + (40 - k) * 50,
      40 + (k % 7) * 9 + (40 - k),
    );
  }
  if (!newest) throw new Error('no backup of shop');
  const verifyId = newBackupId(new Date(NOW - 3_600_000));
  await store.putJson(verifyReportKey('shop', newest.id, verifyId), {
    kind: 'verify',
    status: 'passed',
    finishedAt: new Date(NOW - 3_000_000).toISOString(),
  });
  // billing: its newest backup 22 hours old (ageing against 26), verified and failed.
  const billing = await writeSyntheticBackup(store, 'billing', day(22 / 24), 300);
  await writeSyntheticBackup(store, 'billing', day(2), 280);
  await store.putJson(verifyReportKey('billing', billing.id, newBackupId(new Date(NOW - 60_000))), {
    kind: 'verify',
    status: 'failed',
    finishedAt: new Date(NOW - 60_000).toISOString(),
  });
  // crm: three days old (late); payroll: no backup at all.
  await writeSyntheticBackup(store, 'crm', day(3), 12);
  // Not configured: a hostile catalog name's backup.
  await writeSyntheticBackup(store, HOSTILE, day(1), 5);

  env = {
    ...s3.env(),
    AWS_REGION: 'eu-west-1',
    PGFERRY_STORE: storeUrl,
    // The runbooks as the stack names them in the function's environment.
    PGFERRY_RUNBOOKS: String(functionEnvironment('BackupsWidget').PGFERRY_RUNBOOKS),
  };
  const invocation = await invokeBundle(
    bundled.bundleOf('BackupsWidget'),
    {
      widgetContext: {
        dashboardName: 'Bundled-pgferry',
        widgetId: 'widget-0',
        theme: 'light',
        width: 1200,
        height: 400,
      },
    },
    env,
  );
  if (!invocation.ok) throw new Error(`${invocation.errorType}: ${invocation.errorMessage}`);
  html = invocation.result as string;
}, 600_000);

/** The environment the stack gives the function of construct id `id`. */
function functionEnvironment(id: string): Record<string, unknown> {
  const fn = bundled.stack.functions.all.find((f) => f.node.id === id);
  if (!fn) throw new Error(`no function ${id}`);
  const cfn = fn.node.defaultChild as lambda.CfnFunction;
  return (bundled.stack.resolve(cfn.environment) as { variables: Record<string, unknown> }).variables;
}

/** A complete synthetic backup of `bytes` (as writeSyntheticBackup, of a chosen size). */
async function writeGrowingBackup(
  store: S3Store,
  name: string,
  startedAt: Date,
  bytes: number,
  durationSeconds: number,
): Promise<BackupManifest> {
  const dump = randomBytes(bytes);
  const manifest = syntheticManifest(name, startedAt, dump, durationSeconds);
  await store.upload(backupObjectKey(name, manifest.id, 'dump.pgdump'), Readable.from([dump]));
  await store.putJson(manifestKey(name, manifest.id), manifest);
  return manifest;
}

/** The table row of `id`. */
function row(id: string): string {
  const match = new RegExp(`<tr class="(\\w+)"><td><strong>${id}</strong>.*?</tr>`).exec(html);
  if (!match) throw new Error(`no row for ${id} in ${html.slice(0, 2000)}`);
  return match[0];
}

test('every configured database has a row, coloured by its freshness against its alarm', () => {
  expect(row('shop')).toContain('<tr class="fresh">');
  expect(row('billing')).toContain('<tr class="ageing">');
  expect(row('crm')).toContain('<tr class="late">');
  expect(row('payroll')).toContain('<tr class="none">');
  expect(row('payroll')).toContain('no backup');
});

test("the newest backup's age, size, duration and verification; the last 30 days as sparklines", () => {
  expect(row('shop')).toMatch(/fresh<\/span> (2h 5\dm|3h \dm) /);
  expect(row('shop')).toContain('2.9 KiB');
  expect(row('shop')).toContain('<span class="badge passed">passed</span>');
  expect(row('billing')).toContain('<span class="badge failed">failed</span>');
  expect(row('billing')).toContain('5m 0s');
  expect(row('crm')).toContain('not verified');
  // 30 days of shop's nightly backups (not 40): one point each.
  const points = /<polyline points="([^"]+)"/.exec(row('shop'))?.[1].split(' ') ?? [];
  expect(points.length).toBeGreaterThanOrEqual(29);
  expect(points.length).toBeLessThanOrEqual(31);
});

test('each row links to its runbooks with the database filled in', () => {
  expect(row('billing')).toContain(
    'href="https://eu-west-1.console.aws.amazon.com/systems-manager/automation/execute/Bundled-Backup?region=eu-west-1#Database=billing"',
  );
  for (const runbook of ['Verify', 'Restore', 'Migrate'])
    expect(row('billing')).toContain(`/execute/Bundled-${runbook}?region=eu-west-1#Database=billing"`);
});

test('names from the store are escaped: a hostile catalog name is text, not markup', () => {
  expect(html).toContain('Also in the store');
  expect(html).toContain(
    '&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#39;&lt;/td&gt;&lt;script&gt;x&lt;/script&gt;',
  );
  expect(html).not.toContain('<img');
  expect(html).not.toContain('<script');
});

test('the widget in headless Chromium: screenshot, and the hostile name shown as text', async () => {
  if (!existsSync('/usr/bin/chromium')) {
    execFileSync('apt-get', ['install', '-y', 'chromium'], { stdio: 'inherit' });
  }
  mkdirSync(OUTPUT, { recursive: true });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 420 } });
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.setContent(
      `<!doctype html><html><body style="margin:8px;background:#fff">${html}</body></html>`,
    );
    await page.screenshot({ path: path.join(OUTPUT, 'backups-widget.png'), fullPage: true });
    expect(await page.locator('tr.fresh strong').textContent()).toBe('shop');
    expect(await page.getByText(HOSTILE, { exact: true }).count()).toBe(1);
    expect(await page.locator('svg.spark').count()).toBe(8);
    expect(dialogs).toEqual([]);
  } finally {
    await browser.close();
  }
});
