/** docs/cost.md's worked examples are what scripts/cost-model.ts computes: the page cannot drift from the code. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { renderCostTable, storageProfile } from '../../../scripts/cost-model';

const doc = readFileSync(path.join(__dirname, '../../../docs/cost.md'), 'utf8');

test("docs/cost.md's table is the model's (paste the expected table between the cost-table markers)", () => {
  const match = /<!-- cost-table:start -->\n([\s\S]*?)\n?<!-- cost-table:end -->/.exec(doc);
  expect(match?.[1].trim()).toBe(renderCostTable());
});

test('the default retention keeps 29 backups-worth of GB-months: 17 Standard, 2 Standard-IA, 10 Glacier IR', () => {
  expect(storageProfile().gbMonths).toEqual({ STANDARD: 17, STANDARD_IA: 2, GLACIER_IR: 10 });
  expect(doc).toContain('**29·G GB-months**');
});
