/**
 * `pgferry serve`'s bearer token: where it comes from (`PGFERRY_API_TOKEN`, else a 0600 file,
 * created with a new token at first start) and how a request's `Authorization` is checked.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { PgferryError } from '../core/errors';
import { printable } from './output';

/** The variable that gives the API token instead of the token file. */
export const API_TOKEN_ENV = 'PGFERRY_API_TOKEN';

/** A token shorter than this is refused: it could be guessed. */
const MIN_TOKEN_LENGTH = 16;

/**
 * The API token: `PGFERRY_API_TOKEN`, else the token file's, else a new one written to the token
 * file (mode 0600). A token file others can read is refused, as ssh refuses such a key.
 */
export function apiToken(file: string, env: NodeJS.ProcessEnv): Promise<string> {
  return localSecret({ file, env, envName: API_TOKEN_ENV, what: 'the API token' });
}

/** Where a secret of `pgferry serve` comes from: a variable, else a file (created when missing). */
export interface LocalSecretSource {
  file: string;
  env: NodeJS.ProcessEnv;
  /** The variable that overrides the file. */
  envName: string;
  /** What it is, for the lines printed: `the API token`. */
  what: string;
}

/**
 * A secret of `pgferry serve`: `envName`'s value, else the file's, else a new random one written
 * to the file (mode 0600, its folder 0700). A file others can read is refused. Only the file's
 * path is ever printed, never the secret.
 */
export async function localSecret({ file, env, envName, what }: LocalSecretSource): Promise<string> {
  const fromEnv = env[envName];
  if (fromEnv !== undefined && fromEnv !== '') {
    checkToken(fromEnv, envName, what);
    process.stderr.write(`pgferry serve: ${what} is ${envName}'s\n`);
    return fromEnv;
  }
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (info) {
    if ((info.mode & 0o077) !== 0) {
      throw new PgferryError(
        'InvalidInput',
        `${what}'s file ${file} can be read by others (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it, or remove it for a new one`,
      );
    }
    const token = (await readFile(file, 'utf8')).trim();
    checkToken(token, file, what);
    process.stderr.write(`pgferry serve: ${what} is in ${printable(file)}\n`);
    return token;
  }
  const token = randomBytes(32).toString('base64url');
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  process.stderr.write(
    `pgferry serve: a new ${what.replace(/^the /, '')} is in ${printable(file)} (mode 0600)\n`,
  );
  return token;
}

function checkToken(token: string, from: string, what: string): void {
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new PgferryError(
      'InvalidInput',
      `${what} from ${printable(from)} must be at least ${MIN_TOKEN_LENGTH} characters without spaces`,
    );
  }
}

/** Whether `header` is `Bearer <token>`, compared in constant time (digests of equal length). */
export function authorized(header: string | undefined, token: string): boolean {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? '');
  if (!match) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(match[1]), digest(token));
}
