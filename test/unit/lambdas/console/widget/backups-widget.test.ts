/**
 * The backups widget's rendering (lambdas/console/widget/backups-widget.ts), without a store:
 * freshness against the alarm's threshold, escaping, links, sparklines.
 */
import {
  type DatabaseRow,
  escapeHtml,
  freshnessOf,
  renderWidget,
  runbookUrl,
  sparkline,
} from '../../../../../lambdas/console/widget/backups-widget';

const NOW = new Date('2026-12-02T06:00:00Z');
const HOSTILE = `"><script>alert(1)</script><a href='javascript:x'>&amp;`;
const RUNBOOKS = { backup: 'Pgferry-Backup', restore: 'Pgferry-Restore' };

function row(overrides: Partial<DatabaseRow> = {}): DatabaseRow {
  return { id: 'shop', alarmAfterHours: 26, freshness: 'fresh', trend: [], ...overrides };
}

test('freshness against the threshold: fresh, ageing past three quarters, late at the alarm, none without a backup', () => {
  expect(freshnessOf(3600, 26)).toBe('fresh');
  expect(freshnessOf(19.4 * 3600, 26)).toBe('fresh');
  expect(freshnessOf(19.5 * 3600, 26)).toBe('ageing');
  expect(freshnessOf(26 * 3600, 26)).toBe('late');
  expect(freshnessOf(undefined, 26)).toBe('none');
});

test("a hostile name is escaped wherever it appears: the row, the sparklines' labels, the links", () => {
  const html = renderWidget(
    { rows: [row({ id: HOSTILE })], others: [{ name: HOSTILE, backups: 2, newestAgeSeconds: 60 }] },
    { now: NOW, region: 'eu-west-1', runbooks: RUNBOOKS },
  );
  expect(html).not.toContain('<script');
  expect(html).not.toContain("<a href='javascript");
  expect(html).toContain(escapeHtml(HOSTILE));
  // In a link, the name is a URL component, then an attribute value.
  expect(html).toContain(`#Database=${escapeHtml(encodeURIComponent(HOSTILE))}"`);
});

test('links only to the runbooks deployed, with the database filled in', () => {
  const html = renderWidget(
    { rows: [row()], others: [] },
    { now: NOW, region: 'eu-west-1', runbooks: RUNBOOKS },
  );
  expect(html).toContain(
    'href="https://eu-west-1.console.aws.amazon.com/systems-manager/automation/execute/Pgferry-Restore?region=eu-west-1#Database=shop"',
  );
  expect(html).not.toContain('Pgferry-Verify');
  expect(runbookUrl('eu-west-1', 'Pgferry-Backup', { Database: 'a&b' })).toMatch(/#Database=a%26b$/);
});

test('a sparkline: a line through the points scaled to the box, a dashed line when there is none', () => {
  const day = 86_400_000;
  const svg = sparkline(
    [
      { time: 0, value: 10 },
      { time: day, value: 20 },
    ],
    0,
    day,
    'size',
  );
  expect(svg).toContain('<polyline points="2.0,22.0 118.0,2.0"');
  expect(sparkline([], 0, day, 'size')).toContain('spark-none');
});
