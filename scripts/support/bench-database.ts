/**
 * The benchmark's database: deterministic (every value derives from the row number through
 * hash functions, so two runs at the same size hold the same bytes), shaped like an application's:
 * a small accounts table, a large event log of narrow-to-wide rows (text, jsonb, numeric,
 * timestamptz), documents whose text bodies are TOASTed and compressed, and attachments whose
 * bytea content is incompressible and stored out of line; primary keys, foreign keys and a few
 * secondary indexes.
 *
 * A second dataset, "wide" (`fillWideDatabase`), holds two very large tables instead, so that
 * parallel jobs cannot split the work by table: `wide_events` (~74% of the bytes: jsonb payloads of
 * 7–15 keys, ~220–560 bytes as text, notes of words, three indexes) and `wide_blobs` (~26%:
 * 2–16 KiB of incompressible bytea each). About 940 event rows and 29 blobs per MiB.
 */
import type { Client } from 'pg';

/** Rows per MiB of `pg_database_size`, calibrated on PostgreSQL 15 (see `createBenchDatabase`). */
// Calibrated so that events hold about 40% of the database, documents and attachments about 30%
// each: loads and index builds that parallel jobs can share, as in most applications' databases.
const ROWS_PER_MIB = { accounts: 40, events: 1100, documents: 150, attachments: 70 } as const;

const WORDS = [
  'order',
  'customer',
  'invoice',
  'shipment',
  'payment',
  'refund',
  'account',
  'balance',
  'product',
  'review',
  'the',
  'a',
  'of',
  'and',
  'to',
  'in',
  'is',
  'was',
  'for',
  'on',
  'with',
  'as',
  'by',
  'at',
  'delivered',
  'pending',
  'approved',
  'rejected',
  'warehouse',
  'Berlin',
  'Lisbon',
  'Osaka',
  'Denver',
  'quarterly',
  'report',
  'summary',
  'meeting',
  'notes',
  'decision',
  'budget',
  'forecast',
  'risk',
  'migration',
  'database',
  'backup',
  'restore',
  'latency',
  'throughput',
  'customer-facing',
  'internal',
  'escalated',
  'resolved',
  'ticket',
  'agent',
  'priority',
  'high',
  'low',
  'medium',
  'ship',
  'return',
  'discount',
  'coupon',
  'tax',
  'currency',
];

function schemaSql(): string {
  return `
CREATE TABLE accounts (
  id int PRIMARY KEY, email text NOT NULL, name text NOT NULL, country char(2) NOT NULL,
  created_at timestamptz NOT NULL, settings jsonb NOT NULL);
CREATE TABLE events (
  id bigint PRIMARY KEY, account_id int NOT NULL, occurred_at timestamptz NOT NULL, kind text NOT NULL,
  amount numeric(14,2), attrs jsonb NOT NULL, note text);
CREATE TABLE documents (
  id int PRIMARY KEY, account_id int NOT NULL, title text NOT NULL, body text NOT NULL,
  meta jsonb NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE attachments (
  id int PRIMARY KEY, document_id int NOT NULL, name text NOT NULL, mime text NOT NULL, content bytea NOT NULL);`;
}

function accountsSql(n: number): string {
  return `
INSERT INTO accounts
SELECT i, 'user' || i || '@example.com', initcap(substr(md5(i::text), 1, 7)) || ' ' || initcap(substr(md5((i::bigint * 3)::text), 1, 9)),
       (ARRAY['DE','FR','US','GB','JP','BR','PT','IN'])[1 + i % 8], timestamptz '2020-01-01' + i * interval '47 minutes',
       jsonb_build_object('theme', (ARRAY['dark','light'])[1 + i % 2], 'locale', (ARRAY['en','de','fr','ja'])[1 + i % 4],
                          'notifications', jsonb_build_object('email', i % 3 = 0, 'sms', i % 7 = 0))
FROM generate_series(1, ${n}) i;`;
}

function eventsSql(n: number, accounts: number): string {
  return `
INSERT INTO events
SELECT i, 1 + (i::bigint * 7919) % ${accounts}, timestamptz '2024-01-01' + i * interval '17 seconds',
       (ARRAY['view','click','purchase','refund','signup','login','logout','share'])[1 + (i * 31) % 8],
       CASE WHEN i % 5 = 0 THEN NULL ELSE ((i::bigint * 104729) % 10000000) / 100.0 END,
       jsonb_build_object('ip', '10.' || i % 256 || '.' || i / 256 % 256 || '.' || i::bigint * 7 % 256,
                          'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)','Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)',
                                          'curl/8.5.0','okhttp/4.12.0'])[1 + i % 4],
                          'session', md5(i::text), 'items', jsonb_build_array(i % 97, i % 89, i % 83),
                          'flags', jsonb_build_object('beta', i % 5 = 0, 'mobile', i % 3 = 0)),
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'event ' || i || ': ' || substr(md5((i::bigint * 3)::text) || md5((i::bigint * 5)::text), 1, 10 + i % 50) END
FROM generate_series(1, ${n}) i;`;
}

function documentsSql(n: number, accounts: number): string {
  const words = `ARRAY[${WORDS.map((w) => `'${w}'`).join(',')}]`;
  return `
INSERT INTO documents
SELECT i, 1 + (i::bigint * 31) % ${accounts}, 'Document ' || i || ' ' || substr(md5(i::text), 1, 12),
       (SELECT string_agg(CASE WHEN j % 11 = 0 THEN substr(md5((i::bigint * 1000 + j)::text), 1, 8)
                               ELSE (${words})[1 + abs(hashint8(i::bigint * 1000 + j)) % ${WORDS.length}] END, ' ')
        FROM generate_series(1, 300 + i % 400) j),
       jsonb_build_object('version', i % 9, 'tags', jsonb_build_array('t' || i % 13, 't' || i % 17), 'words', 300 + i % 400),
       timestamptz '2023-06-01' + i * interval '5 minutes'
FROM generate_series(1, ${n}) i;`;
}

function attachmentsSql(n: number, documents: number): string {
  return `
INSERT INTO attachments
SELECT i, 1 + (i::bigint * 13) % ${documents}, 'file-' || i || (ARRAY['.png','.pdf','.jpg','.zip'])[1 + i % 4],
       (ARRAY['image/png','application/pdf','image/jpeg','application/zip'])[1 + i % 4],
       (SELECT decode(string_agg(md5((i::bigint * 1000 + j)::text), ''), 'hex') FROM generate_series(1, 64 + (i * 37) % 320) j)
FROM generate_series(1, ${n}) i;`;
}

const POST_DATA_SQL = `
ALTER TABLE events ADD FOREIGN KEY (account_id) REFERENCES accounts;
ALTER TABLE documents ADD FOREIGN KEY (account_id) REFERENCES accounts;
ALTER TABLE attachments ADD FOREIGN KEY (document_id) REFERENCES documents;
CREATE INDEX events_account_time ON events (account_id, occurred_at);
CREATE INDEX events_kind ON events (kind);
CREATE INDEX documents_title ON documents (title);
CREATE INDEX attachments_document ON attachments (document_id);
ANALYZE;`;

export interface BenchDatabaseRows {
  accounts: number;
  events: number;
  documents: number;
  attachments: number;
}

/** Row counts for a database of about `sizeMiB` MiB. */
export function rowsFor(sizeMiB: number): BenchDatabaseRows {
  const n = (perMiB: number) => Math.max(10, Math.round(perMiB * sizeMiB));
  return {
    accounts: n(ROWS_PER_MIB.accounts),
    events: n(ROWS_PER_MIB.events),
    documents: n(ROWS_PER_MIB.documents),
    attachments: n(ROWS_PER_MIB.attachments),
  };
}

/**
 * Fills the (empty) database behind `connect()` with about `sizeMiB` MiB, loading on two
 * connections at once (the tables are independent until the foreign keys are added).
 */
export async function fillBenchDatabase(connect: () => Promise<Client>, sizeMiB: number): Promise<void> {
  const rows = rowsFor(sizeMiB);
  const [a, b] = [await connect(), await connect()];
  try {
    await a.query(schemaSql());
    await Promise.all([
      a.query(accountsSql(rows.accounts)).then(() => a.query(eventsSql(rows.events, rows.accounts))),
      b
        .query(documentsSql(rows.documents, rows.accounts))
        .then(() => b.query(attachmentsSql(rows.attachments, rows.documents))),
    ]);
    await a.query(POST_DATA_SQL);
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
}

// --- the "wide" dataset -----------------------------------------------------------------------

/**
 * Rows per MiB of `pg_database_size` of the "wide" dataset, calibrated on PostgreSQL 15 for the
 * sizes the benchmark uses (880 and 27 gave 239 MiB for 250; an empty database is ~7.5 MiB, so
 * small sizes come out a little larger): event rows hold about 74% of the bytes (with their three
 * indexes), blobs about 26%.
 */
const WIDE_ROWS_PER_MIB = { events: 940, blobs: 29 } as const;

const WIDE_KINDS = [
  'page_view',
  'click',
  'purchase',
  'refund',
  'signup',
  'login',
  'logout',
  'share',
  'search',
  'add_to_cart',
  'remove_from_cart',
  'checkout',
  'subscribe',
  'unsubscribe',
  'comment',
  'like',
  'upload',
  'download',
  'error',
  'heartbeat',
];

const WIDE_SCHEMA_SQL = `
CREATE TABLE wide_events (
  id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, kind text NOT NULL, amount numeric(12,2),
  payload jsonb NOT NULL, note text);
CREATE TABLE wide_blobs (id bigint PRIMARY KEY, event_id bigint NOT NULL, data bytea NOT NULL);`;

/** Event rows `from..to`: a nested jsonb payload of 5–15 keys (~300–600 bytes), a note of words. */
function wideEventsSql(from: number, to: number): string {
  const words = `ARRAY[${WORDS.map((w) => `'${w}'`).join(',')}]`;
  const kinds = `ARRAY[${WIDE_KINDS.map((k) => `'${k}'`).join(',')}]`;
  // Seven keys always; k8..k15 when the row's key count (7 + h % 9, so 7–15) reaches them;
  // jsonb_strip_nulls drops the others.
  const optional = (k: number, value: string) => `'k${k}', CASE WHEN 7 + h % 9 >= ${k} THEN ${value} END`;
  return `
INSERT INTO wide_events
SELECT i, timestamptz '2024-01-01' + i * interval '13 seconds' + (h % 600) * interval '1 second',
       (${kinds})[1 + (h / 7) % ${WIDE_KINDS.length}],
       CASE WHEN i % 7 = 0 THEN NULL ELSE ((h / 13) % 100000000) / 100.0 END,
       jsonb_strip_nulls(jsonb_build_object(
         'user', jsonb_build_object('id', h % 1000003, 'name', 'user_' || substr(md5(i::text), 1, 10),
                                    'country', (ARRAY['DE','FR','US','GB','JP','BR','PT','IN'])[1 + h % 8]),
         'session', md5((i * 3)::text),
         'source', (ARRAY['web','ios','android','api'])[1 + (h / 3) % 4],
         'version', (h / 5) % 50,
         'ok', h % 3 > 0,
         'path', '/' || (${words})[1 + (h / 29) % ${WORDS.length}] || '/' || substr(md5((i * 5)::text), 1, 20) || '?page=' || h % 50,
         'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)','Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)',
                         'curl/8.5.0','okhttp/4.12.0'])[1 + (h / 31) % 4],
         ${optional(8, `jsonb_build_array(h % 97, h % 89, h % 83, h % 79)`)},
         ${optional(9, `'ref-' || substr(md5((i * 11)::text), 1, 16)`)},
         ${optional(10, `jsonb_build_object('a', h % 1000, 'b', substr(md5((i * 13)::text), 1, 12), 'c', h % 2 = 0)`)},
         ${optional(11, `(h / 17) % 1000000 / 1000.0`)},
         ${optional(12, `(${words})[1 + (h / 19) % ${WORDS.length}] || ' ' || (${words})[1 + (h / 23) % ${WORDS.length}]`)},
         ${optional(13, `md5((i * 17)::text)`)},
         ${optional(14, `jsonb_build_object('depth', jsonb_build_object('level', h % 5, 'tag', substr(md5((i * 19)::text), 1, 8)))`)},
         ${optional(15, `timestamptz '2024-01-01' + (h % 31536000) * interval '1 second'`)})),
       (SELECT string_agg((${words})[1 + abs(hashint8(i * 100 + j)) % ${WORDS.length}], ' ')
        FROM generate_series(1, 16 + i % 14) j)
FROM (SELECT i, abs(hashint8(i)) AS h FROM generate_series(${from}::bigint, ${to}) i) s;`;
}

/** Blob rows `from..to`: 2–16 KiB of incompressible bytes (sha256 chains), stored out of line. */
function wideBlobsSql(from: number, to: number, events: number): string {
  return `
INSERT INTO wide_blobs
SELECT i, 1 + (i * 7919) % ${events},
       (SELECT string_agg(sha256(int8send(i * 1000 + j)), ''::bytea) FROM generate_series(1, 64 + abs(hashint8(i)) % 449) j)
FROM generate_series(${from}::bigint, ${to}) i;`;
}

const WIDE_POST_DATA_SQL = `
CREATE INDEX wide_events_occurred_at ON wide_events (occurred_at);
CREATE INDEX wide_events_kind_amount ON wide_events (kind, amount);
CREATE INDEX wide_blobs_event ON wide_blobs (event_id);
ANALYZE;`;

export interface WideDatabaseRows {
  wide_events: number;
  wide_blobs: number;
}

/** Row counts of the "wide" dataset for about `sizeMiB` MiB. */
export function wideRowsFor(sizeMiB: number): WideDatabaseRows {
  const n = (perMiB: number) => Math.max(10, Math.round(perMiB * sizeMiB));
  return { wide_events: n(WIDE_ROWS_PER_MIB.events), wide_blobs: n(WIDE_ROWS_PER_MIB.blobs) };
}

/**
 * Fills the (empty) database behind `connect()` with the "wide" dataset of about `sizeMiB` MiB:
 * two very large tables (`wide_events`, `wide_blobs`), so that parallel jobs cannot split the work
 * by table. Loads on two connections (each table's rows in two halves).
 */
export async function fillWideDatabase(connect: () => Promise<Client>, sizeMiB: number): Promise<void> {
  const rows = wideRowsFor(sizeMiB);
  const [a, b] = [await connect(), await connect()];
  const half = (n: number) => Math.floor(n / 2);
  try {
    await a.query(WIDE_SCHEMA_SQL);
    await Promise.all([
      a
        .query(wideEventsSql(1, half(rows.wide_events)))
        .then(() => a.query(wideBlobsSql(1, half(rows.wide_blobs), rows.wide_events))),
      b
        .query(wideEventsSql(half(rows.wide_events) + 1, rows.wide_events))
        .then(() => b.query(wideBlobsSql(half(rows.wide_blobs) + 1, rows.wide_blobs, rows.wide_events))),
    ]);
    await a.query(WIDE_POST_DATA_SQL);
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
}

/** A tiny database (one small table): what the orchestration case backs up. */
export const TINY_DATABASE_SQL = `
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 100) i;`;
