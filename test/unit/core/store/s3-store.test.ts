/** The S3 store's retry and timeout settings: explicit defaults, overridable, validated. */
import { DEFAULT_S3_RETRY, s3RetrySettings } from '../../../../core/store/s3-store';

test('default to 8 attempts, a 10 s connection timeout and a 60 s idle-socket timeout', () => {
  expect(s3RetrySettings({})).toEqual({
    maxAttempts: 8,
    connectionTimeoutMs: 10_000,
    socketTimeoutMs: 60_000,
  });
  expect(DEFAULT_S3_RETRY).toEqual(s3RetrySettings({}));
});

test('AWS_MAX_ATTEMPTS and PGFERRY_S3_TIMEOUT_SECONDS override them', () => {
  expect(s3RetrySettings({ AWS_MAX_ATTEMPTS: '3', PGFERRY_S3_TIMEOUT_SECONDS: '2.5' })).toEqual({
    maxAttempts: 3,
    connectionTimeoutMs: 10_000,
    socketTimeoutMs: 2500,
  });
});

test.each(['0', '-1', 'soon', 'Infinity'])('a setting of %j is refused, naming the variable', (value) => {
  expect(() => s3RetrySettings({ PGFERRY_S3_TIMEOUT_SECONDS: value })).toThrow(
    /^PGFERRY_S3_TIMEOUT_SECONDS must be a positive number/,
  );
  expect(() => s3RetrySettings({ AWS_MAX_ATTEMPTS: value })).toThrow(
    /^AWS_MAX_ATTEMPTS must be a positive number/,
  );
});
