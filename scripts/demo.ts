/**
 * `npm run demo`: a real backup on this machine. Starts a throwaway PostgreSQL 15 server, fills a
 * `shop` database with ~200k rows, backs it up with the pgferry CLI, lists the store and shows the
 * files. The server is stopped and removed afterwards, whatever happens.
 *
 *   npm run demo -- [--store <dir|s3://bucket/prefix>] [--pg-bin <dir>]   (store: ./demo-store)
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'pg';
import { formatBytes } from '../cli/output';
import { normaliseStoreUrl, openStore } from '../core/store';
import { manifestKey } from '../core/store-keys';
import { REPO_ROOT } from '../lib/paths';

/** The demo's own store, emptied at each run. */
const DEMO_STORE = './demo-store';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string', default: DEMO_STORE },
    'pg-bin': { type: 'string', default: '/usr/lib/postgresql/15/bin' },
  },
});
const store = /^(s3|file):\/\//.test(args.store) ? args.store : path.resolve(args.store);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-demo-'));
const dataDir = path.join(dir, 'data');
const password = randomBytes(18).toString('base64url');
// PostgreSQL refuses to run as root: as root, its tools run as the `postgres` system user.
const asRoot = process.getuid?.() === 0;

let running: ChildProcess | undefined;

/** Runs a command to completion, stderr shown; rejects on failure; resolves with its stdout. */
function run(
  cmd: string,
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; tee?: boolean; name?: string } = {},
) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: dir, env: opts.env, stdio: ['ignore', 'pipe', 'inherit'] });
    running = child;
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (opts.tee) process.stdout.write(d);
    });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${opts.name ?? path.basename(cmd)} failed (${code ?? signal})`)),
    );
  });
}

function runPg(tool: string, argv: string[]): Promise<string> {
  const bin = path.join(args['pg-bin'], tool);
  return asRoot ? run('runuser', ['-u', 'postgres', '--', bin, ...argv], { name: tool }) : run(bin, argv);
}

function giveToPostgres(file: string): void {
  if (!asRoot) return;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
  chownSync(file, id('-u'), id('-g'));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function startServer(port: number): Promise<void> {
  giveToPostgres(dir);
  const pwfile = path.join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  giveToPostgres(pwfile);
  try {
    await runPg('initdb', [
      ...['-D', dataDir, '-U', 'postgres', '--pwfile', pwfile, '-E', 'UTF8', '--locale=C', '--no-sync'],
      ...['--auth-local=scram-sha-256', '--auth-host=scram-sha-256'],
    ]);
  } finally {
    rmSync(pwfile, { force: true });
  }
  const settings = {
    port,
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${dir}'`,
    fsync: 'off',
  };
  const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`);
  appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n${conf.join('')}`);
  await runPg('pg_ctl', ['start', '-w', '-s', '-D', dataDir, '-l', path.join(dir, 'server.log')]);
}

const SHOP_SQL = `
CREATE TABLE customers (
  id bigint PRIMARY KEY, email text NOT NULL UNIQUE, full_name text NOT NULL,
  country char(2) NOT NULL, created_at timestamptz NOT NULL, avatar bytea);
INSERT INTO customers
SELECT i, 'customer' || i || '@example.com', initcap(substr(md5(i::text), 1, 8)) || ' ' || initcap(substr(md5(i::text), 9, 10)),
       (ARRAY['DE','FR','US','GB','JP','BR'])[1 + i % 6], now() - i * interval '13 minutes',
       decode(md5(i::text) || md5((i * 7)::text), 'hex')
FROM generate_series(1, 40000) i;
CREATE TABLE products (id int PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL, price numeric(10,2) NOT NULL);
INSERT INTO products SELECT i, 'SKU-' || lpad(i::text, 5, '0'), 'Product ' || i, round((1 + random() * 199)::numeric, 2)
FROM generate_series(1, 1000) i;
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL, placed_at timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'refunded')),
  total numeric(12,2) NOT NULL, items jsonb NOT NULL);
INSERT INTO orders
SELECT i, 1 + i % 40000, now() - i * interval '3 minutes', (ARRAY['pending','paid','shipped','refunded'])[1 + i % 4],
       round((10 + random() * 490)::numeric, 2),
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || lpad((1 + i * 31 % 1000)::text, 5, '0'), 'qty', 1 + i % 4),
                         jsonb_build_object('sku', 'SKU-' || lpad((1 + i * 17 % 1000)::text, 5, '0'), 'qty', 1))
FROM generate_series(1, 160000) i;
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers; -- one check, not 160k
CREATE INDEX orders_customer_placed ON orders (customer_id, placed_at);
ANALYZE;`;

async function createShop(port: number): Promise<void> {
  const connect = async (database: string) => {
    const client = new Client({ host: '127.0.0.1', port, user: 'postgres', password, database });
    client.on('error', () => undefined); // a lost connection also fails the query running on it
    await client.connect();
    return client;
  };
  const admin = await connect('postgres');
  await admin.query('CREATE DATABASE shop').finally(() => admin.end());
  const shop = await connect('shop');
  await shop.query(SHOP_SQL).finally(() => shop.end());
}

/** The CLI, as a user runs it; the password goes through PGPASSWORD, never argv. */
function pgferry(argv: string[]): Promise<string> {
  const env = { ...process.env, PGPASSWORD: password };
  const cli = path.join(REPO_ROOT, 'bin', 'pgferry.js');
  return run(process.execPath, [cli, ...argv], { env, tee: true, name: `pgferry ${argv[0]}` });
}

function showFiles(folder: string): void {
  console.log(`\nThe backup's files, in ${folder}:`);
  for (const entry of readdirSync(folder, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    console.log(`  ${formatBytes(statSync(file).size).padStart(10)}  ${path.relative(folder, file)}`);
  }
}

let stopping: Promise<void> | undefined;
function stopServer(): Promise<void> {
  stopping ??= runPg('pg_ctl', ['stop', '-s', '-m', 'immediate', '-D', dataDir])
    .catch(() => undefined) // not started, or already gone
    .then(() => rmSync(dir, { recursive: true, force: true }));
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the demo server`);
    running?.kill(signal);
    void stopServer().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  try {
    // Each run's server is a new one, and a store refuses one catalog name for two servers: the
    // demo's own store starts empty each time (a store given with --store is left as it is).
    if (args.store === DEMO_STORE && existsSync(store)) {
      rmSync(store, { recursive: true, force: true });
      console.log(`Emptied ${DEMO_STORE} (the previous demo run's backups)`);
    }
    const port = await freePort();
    console.log(`Starting a throwaway PostgreSQL server on 127.0.0.1:${port} (${dir})`);
    await startServer(port);
    let t = Date.now();
    await createShop(port);
    console.log(`Created database "shop" (customers, products, orders: ~200k rows) in ${Date.now() - t} ms`);

    const source = `postgres://postgres@127.0.0.1:${port}/shop`;
    console.log(`\n$ PGPASSWORD=… pgferry backup --source ${source} --store ${store}`);
    t = Date.now();
    const id = (await pgferry(['backup', '--source', source, '--store', store])).trim().split('\n').pop();
    const wallSeconds = (Date.now() - t) / 1000;
    // The backup's own duration, as list shows it, and apart from it the command's wall time.
    const manifest = id
      ? await openStore(normaliseStoreUrl(store)).getJson(manifestKey('shop', id))
      : undefined;
    const { durationSeconds } = (manifest ?? {}) as { durationSeconds?: number };
    console.log(
      `Backup ${id} took ${durationSeconds?.toFixed(1)} s (list's DURATION: from its preflight to its manifest); ` +
        `the command ran ${wallSeconds.toFixed(1)} s, with Node's start and loading the workflow`,
    );

    console.log(`\n$ pgferry list --store ${store}`);
    await pgferry(['list', '--store', store]);
    const folder = store.replace(/^file:\/\//, '');
    if (id && !store.startsWith('s3://')) showFiles(path.join(folder, 'shop', id));
    else console.log(`\nThe backup's objects are under ${store}/shop/${id}/`);
  } catch (err) {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  } finally {
    await stopServer();
  }
}

void main();
