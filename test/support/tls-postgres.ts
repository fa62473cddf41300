/**
 * A throwaway PostgreSQL 15 server that accepts only TLS over TCP (`hostssl` lines only in
 * pg_hba.conf), with a certificate signed by a CA made for the test, for the TLS tests. It logs
 * every connection (`log_connections`), so a test can see which sessions were encrypted.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { makeCa, makeServerCert } from './certificates';
import { isRoot, osUserIds, type PostgresServerInfo, startPostgres, stopPostgres } from './postgres';

export interface TlsPostgres {
  server: PostgresServerInfo;
  /** The CA that signed the server's certificate (for `sslrootcert`). */
  caFile: string;
  /** Another CA, which signed nothing the server presents. */
  otherCaFile: string;
  /** An address the server also listens on but its certificate does not name. */
  unnamedHost: string;
  /** Connection log lines written since the server started. */
  connectionLog(): string[];
  stop(): Promise<void>;
}

export async function startTlsPostgres(password: string): Promise<TlsPostgres> {
  const parentDir = mkdtempSync(path.join(tmpdir(), 'pgferry-tls-'));
  chmodSync(parentDir, 0o711);
  const certDir = path.join(parentDir, 'certs');
  mkdirSync(certDir, { mode: 0o755 });
  const caFile = await makeCa(certDir, 'ca');
  const otherCaFile = await makeCa(certDir, 'other-ca');
  await makeServerCert(certDir, 'ca');
  chmodSync(path.join(certDir, 'server.key'), 0o600);
  if (isRoot()) {
    const { uid, gid } = osUserIds();
    chownSync(path.join(certDir, 'server.key'), uid, gid);
    chownSync(path.join(certDir, 'server.crt'), uid, gid);
  }
  const unnamedHost = '127.0.0.2';
  const server = await startPostgres(15, {
    parentDir,
    password,
    settings: {
      listen_addresses: `127.0.0.1,${unnamedHost}`,
      ssl: 'on',
      ssl_cert_file: path.join(certDir, 'server.crt'),
      ssl_key_file: path.join(certDir, 'server.key'),
      log_connections: 'on',
    },
  });
  // TCP only with TLS from now on; the unix socket stays `trust` for the harness.
  writeFileSync(
    path.join(server.dataDir, 'pg_hba.conf'),
    'local all all trust\nhostssl all all 127.0.0.0/8 scram-sha-256\n',
  );
  const client = new Client({
    host: server.socketDir,
    port: server.port,
    user: server.user,
    database: 'postgres',
  });
  await client.connect();
  try {
    await client.query('SELECT pg_reload_conf()');
  } finally {
    await client.end();
  }
  await waitForPlainRefused(server);
  return {
    server,
    caFile,
    otherCaFile,
    unnamedHost,
    connectionLog: () =>
      readFileSync(server.logFile, 'utf8')
        .split('\n')
        .filter((line) => line.includes('connection authorized')),
    async stop() {
      await stopPostgres(server);
      rmSync(parentDir, { recursive: true, force: true });
    },
  };
}

/** The reload is asynchronous: wait until a connection without TLS is refused. */
async function waitForPlainRefused(server: PostgresServerInfo): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new Client({ ...serverLogin(server), ssl: false });
    try {
      await client.connect();
      await client.end();
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error('the TLS test server still accepts connections without TLS');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function serverLogin(server: PostgresServerInfo) {
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
  };
}
