import { Logger } from '@aws-lambda-powertools/logger';

/**
 * Structured JSON logs (Powertools), the same in Lambda, in the container and locally. The level
 * comes from POWERTOOLS_LOG_LEVEL; the local CLI silences the in-process handlers' logs unless
 * asked to be verbose. Nothing logged may contain a password: log ids, names and sizes.
 */
export function createLogger(serviceName: string): Logger {
  return new Logger({ serviceName });
}
