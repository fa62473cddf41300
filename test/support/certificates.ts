/**
 * Certificates for the TLS tests, made with openssl: a CA made for the test and a server
 * certificate for localhost and 127.0.0.1 that it signed (valid two days).
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

/** A self-signed CA: `<name>.crt`, `<name>.key` in `dir`. */
export async function makeCa(dir: string, name: string): Promise<string> {
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
    ].concat(['-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=pgferry test ${name}`]),
    dir,
  );
  return path.join(dir, `${name}.crt`);
}

/** A server certificate for localhost and 127.0.0.1, signed by the CA `ca`. */
export async function makeServerCert(dir: string, ca: string): Promise<void> {
  await openssl(
    ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=localhost',
    ]),
    dir,
  );
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
    ].concat(['-days', '2', '-out', 'server.crt', '-extfile', 'server.ext']),
    dir,
  );
}
