/** The names a refusal offers for one that matched nothing. */
import { closeNames } from '../../../core/close-names';

test('close names: case aside, then within one slip (names of 3 to 5 characters) or two (longer), closest first', () => {
  const names = ['orders', 'order', 'Orders', 'ordres', 'customers', 'items', 'item', 'it', 'ta', 'tá', 'tà'];
  expect(closeNames('ORDERS', names)).toEqual(['Orders', 'orders', 'order', 'ordres']);
  expect(closeNames('ordrs', names)).toEqual(['Orders', 'orders', 'ordres']);
  expect(closeNames('itms', names)).toEqual(['items']);
  // Two neighbours swapped: one slip.
  expect(closeNames('slaes', ['sales', 'seals', 'tales'])).toEqual(['sales']);
  // Two characters: only a name equal but for case.
  expect(closeNames('tb', names)).toEqual([]);
  expect(closeNames('TA', names)).toEqual(['ta']);
  expect(closeNames('tâ', ['tá', 'tà', 'ta', 'tä'])).toEqual([]);
  expect(closeNames('tâx', ['tá', 'tàx', 'tax'])).toEqual(['tax', 'tàx']);
  expect(closeNames('customer', names, 1)).toEqual(['customers']);
  expect(closeNames('orders', names)).not.toContain('orders');
});
