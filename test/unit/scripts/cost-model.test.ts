/** docs/cost.md's worked examples are what scripts/cost-model.ts computes: the page cannot drift from the code. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { EXAMPLES, monthlyCost, renderCostTable, storageProfile } from '../../../scripts/cost-model';

const doc = readFileSync(path.join(__dirname, '../../../docs/cost.md'), 'utf8');

test("docs/cost.md's table is the model's (paste the expected table between the cost-table markers)", () => {
  const match = /<!-- cost-table:start -->\n([\s\S]*?)\n?<!-- cost-table:end -->/.exec(doc);
  expect(match?.[1].trim()).toBe(renderCostTable());
});

test('the default retention keeps 29 backups-worth of GB-months: 17 Standard, 2 Standard-IA, 10 Glacier IR', () => {
  expect(storageProfile().gbMonths).toEqual({ STANDARD: 17, STANDARD_IA: 2, GLACIER_IR: 10 });
  expect(doc).toContain('**29·G GB-months**');
});

test("the page's claim for 1,000 databases with their zones configured: the total less the cross-AZ line", () => {
  const lines = monthlyCost(EXAMPLES[2]);
  const total = lines.reduce((sum, l) => sum + l.perMonth, 0);
  const crossAz = lines.find((l) => l.item.startsWith('Cross-AZ'))?.perMonth ?? 0;
  const tens = (n: number) => `$${(Math.round(n / 10) * 10).toLocaleString('en-US')}`;
  expect(doc).toContain(
    `1,000 databases cost about ${tens(total - crossAz)} a month instead of ${tens(total)}`,
  );
});
