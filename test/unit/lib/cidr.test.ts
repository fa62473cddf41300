/** IPv4 ranges, as the configuration's network check reads them. */
import { cidrContains, isIpv4Cidr, parseIpv4Cidr } from '../../../lib/cidr';

test('a CIDR block is its first and last address', () => {
  expect(parseIpv4Cidr('10.20.0.0/16')).toEqual({ first: 0x0a140000, last: 0x0a14ffff });
  expect(parseIpv4Cidr('0.0.0.0/0')).toEqual({ first: 0, last: 2 ** 32 - 1 });
  // Host bits set: the block they are in.
  expect(parseIpv4Cidr('10.20.30.40/16')).toEqual(parseIpv4Cidr('10.20.0.0/16'));
});

test('malformed blocks are refused', () => {
  for (const bad of ['10.0.0.0', '10.0.0/8', '10.0.0.256/24', '10.0.0.0/33', '::/0', 'sg-123'])
    expect(isIpv4Cidr(bad)).toBe(false);
});

test('a block contains the blocks inside it, and no block that reaches outside it', () => {
  expect(cidrContains('10.0.0.0/16', '10.0.5.0/24')).toBe(true);
  expect(cidrContains('10.0.0.0/16', '10.0.0.0/16')).toBe(true);
  expect(cidrContains('10.0.0.0/16', '10.0.0.0/15')).toBe(false);
  expect(cidrContains('10.0.0.0/16', '10.1.0.0/24')).toBe(false);
  expect(cidrContains('10.0.0.0/16', 'nonsense')).toBe(false);
});
