import { InvalidArgumentError, Option } from 'commander';
import { ToastCompressionSchema } from '../core/contracts';
import { MAX_REQUESTED_JOBS, RequestedJobsSchema } from '../core/contracts/shared';
import { errorMessage } from '../core/errors';

/** Wraps a parser so that its error becomes commander's one-line "invalid argument" message. */
export function option<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError(errorMessage(err));
    }
  };
}

/** In-process handlers log through Powertools; keep them quiet unless asked. */
export function configureLogging(verbose: boolean): void {
  process.env.POWERTOOLS_LOG_LEVEL = verbose ? 'DEBUG' : 'SILENT';
}

/** `--toast-compression` of restore and migrate, its choices those of the request's schema. */
export function toastCompressionOption(): Option {
  return new Option(
    '--toast-compression <method>',
    'what the loaded values are TOAST-compressed with: lz4 (where the target offers it) or server-default',
  )
    .choices(ToastCompressionSchema.options)
    .default('lz4');
}

/** `--jobs`: a whole number within what the requests accept (core/contracts `RequestedJobsSchema`). */
export function parseJobs(value: string): number {
  const n = Number(value);
  if (!RequestedJobsSchema.safeParse(n).success) {
    throw new Error(`--jobs must be a whole number from 1 to ${MAX_REQUESTED_JOBS}`);
  }
  return n;
}
