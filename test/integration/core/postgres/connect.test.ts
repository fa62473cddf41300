/**
 * core/postgres/connect.ts's `sslmode=prefer` on real servers, each behind a TCP proxy that counts
 * the sockets the client opens: TLS where the server offers it (one socket a session); plain text
 * where it does not, after one refused TLS request, and the process's later sessions to that
 * server in plain text at once (one socket a session, not two), and a runner started by this
 * process too (the refusals handed down in its environment). `require` stays refused.
 */
import { createServer, type Server, connect as tcpConnect } from 'node:net';
import type { Client } from 'pg';
import type { Connection } from '../../../../core/contracts';
import { connectPg, endQuietly, TLS_REFUSED_ENV, tlsRefusals } from '../../../../core/postgres/connect';
import { testEnv } from '../../../support/env';
import { startTlsPostgres, type TlsPostgres } from '../../../support/tls-postgres';

const pg = testEnv().server(15);
const password = `tls-prefer-${process.pid}`;
let tls: TlsPostgres;
const proxies: Server[] = [];

beforeAll(async () => {
  tls = await startTlsPostgres(password);
}, 120_000);
afterAll(async () => {
  for (const proxy of proxies) proxy.close();
  await tls?.stop();
});

/** A proxy on a port of its own in front of `port`, and how many sockets it accepted so far. */
async function countingProxy(port: number): Promise<{ port: number; sockets: () => number }> {
  let sockets = 0;
  const proxy = createServer((socket) => {
    sockets += 1;
    const upstream = tcpConnect(port, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  proxies.push(proxy);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return { port: (proxy.address() as { port: number }).port, sockets: () => sockets };
}

const login = (port: number, sslmode: Connection['sslmode']): Connection => ({
  host: '127.0.0.1',
  port,
  user: 'postgres',
  database: 'postgres',
  sslmode,
});

/** Whether the client's session is encrypted, as the server sees it. */
async function encrypted(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ ssl: boolean }>(
    'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
  );
  return rows[0].ssl;
}

async function sessions(connection: Connection, secret: string, count: number): Promise<boolean[]> {
  const seen: boolean[] = [];
  for (let i = 0; i < count; i++) {
    const client = await connectPg(connection, secret);
    try {
      seen.push(await encrypted(client));
    } finally {
      await endQuietly(client);
    }
  }
  return seen;
}

test('prefer, the server without TLS: one refused TLS request, then every session in plain text on one socket', async () => {
  const proxy = await countingProxy(pg.port);
  expect(await sessions(login(proxy.port, 'prefer'), pg.password, 3)).toEqual([false, false, false]);
  // The first session: the refused TLS request's socket and its own; the other two: theirs.
  expect(proxy.sockets()).toBe(4);
  // A replication connection to the same server goes plain at once too.
  const replication = await connectPg(login(proxy.port, 'prefer'), pg.password, undefined, 'database');
  await endQuietly(replication);
  expect(proxy.sockets()).toBe(5);
});

test('a refusal handed down in the environment (the runner the CLI starts): its first session goes plain at once', async () => {
  const refused = await countingProxy(pg.port);
  await sessions(login(refused.port, 'prefer'), pg.password, 1);
  // What the CLI hands its runner: the servers that refused it TLS, not those that took it.
  expect(tlsRefusals().split(' ')).toContain(`127.0.0.1:${refused.port}`);
  const proxy = await countingProxy(pg.port);
  process.env[TLS_REFUSED_ENV] = `127.0.0.1:${proxy.port}`;
  try {
    expect(await sessions(login(proxy.port, 'prefer'), pg.password, 2)).toEqual([false, false]);
    expect(proxy.sockets()).toBe(2);
  } finally {
    delete process.env[TLS_REFUSED_ENV];
  }
});

test('require to a server that refused TLS before is still refused', async () => {
  const proxy = await countingProxy(pg.port);
  expect(await sessions(login(proxy.port, 'prefer'), pg.password, 1)).toEqual([false]);
  await expect(connectPg(login(proxy.port, 'require'), pg.password)).rejects.toThrow(/does not support SSL/i);
});

test('prefer, the server with TLS: every session encrypted, one socket each', async () => {
  const proxy = await countingProxy(tls.server.port);
  expect(await sessions(login(proxy.port, 'prefer'), password, 3)).toEqual([true, true, true]);
  expect(proxy.sockets()).toBe(3);
  expect(tlsRefusals().split(' ')).not.toContain(`127.0.0.1:${proxy.port}`);
});
