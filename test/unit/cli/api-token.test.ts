/** `pgferry serve`'s token: where it comes from, and how a request's is checked. */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { apiToken, authorized } from '../../../cli/api-token';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-token-'));
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
});
afterEach(() => {
  jest.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

test('a first start writes a new token into a 0600 file, and the next start reads it', async () => {
  const file = path.join(dir, 'state', 'api-token');
  const token = await apiToken(file, {});
  expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(readFileSync(file, 'utf8').trim()).toBe(token);
  expect(await apiToken(file, {})).toBe(token);
});

test('PGFERRY_API_TOKEN overrides the file, which is not created', async () => {
  const file = path.join(dir, 'api-token');
  expect(await apiToken(file, { PGFERRY_API_TOKEN: 'a-token-of-20-chars!' })).toBe('a-token-of-20-chars!');
  expect(() => statSync(file)).toThrow();
});

test('a token file others can read, and a short token, are refused', async () => {
  const file = path.join(dir, 'api-token');
  writeFileSync(file, 'a-long-enough-token-0123\n', { mode: 0o644 });
  await expect(apiToken(file, {})).rejects.toThrow(/can be read by others \(mode 644\): chmod 600/);
  await expect(apiToken(file, { PGFERRY_API_TOKEN: 'short' })).rejects.toThrow(/at least 16 characters/);
});

test.each([
  ['Bearer the-right-token-0123', true],
  ['bearer the-right-token-0123', true],
  ['Bearer the-wrong-token-0123', false],
  ['Bearer the-right-token-012', false],
  ['Basic the-right-token-0123', false],
  ['the-right-token-0123', false],
  [undefined, false],
])('Authorization %p → %p', (header, ok) => {
  expect(authorized(header, 'the-right-token-0123')).toBe(ok);
});
