import type { ArchiveTocEntry } from '../../../../core/postgres/archive';
import {
  copySessionSetup,
  copyStatement,
  namesNotExact,
  notCopyData,
} from '../../../../core/postgres/copy-stream';

const entry = (e: Partial<ArchiveTocEntry>): ArchiveTocEntry => ({
  dumpId: 1,
  hadDumper: false,
  tableoid: 0,
  oid: 0,
  tag: null,
  desc: null,
  namespace: null,
  owner: null,
  dependencies: [],
  dropped: false,
  ...e,
});

describe('copySessionSetup', () => {
  test("pg_restore's session settings, but UTF-8: the archive's string syntax, then the fixed ones and the load's", () => {
    const toc = [
      entry({ dumpId: 1, desc: 'ENCODING', defn: "SET client_encoding = 'LATIN1';\n" }),
      entry({ dumpId: 2, desc: 'STDSTRINGS', defn: "SET standard_conforming_strings = 'on';\n" }),
    ];
    // The statements are sent in UTF-8 (the names decoded); each COPY names its rows' encoding.
    expect(copySessionSetup(toc, [['default_toast_compression', 'lz4']])).toEqual([
      "SET client_encoding = 'UTF8'",
      "SET standard_conforming_strings = 'on'",
      "SELECT pg_catalog.set_config('search_path', '', false)",
      'SET statement_timeout = 0',
      'SET lock_timeout = 0',
      'SET idle_in_transaction_session_timeout = 0',
      'SET check_function_bodies = false',
      'SET xmloption = content',
      'SET client_min_messages = warning',
      'SET row_security = off',
      "SET default_toast_compression = 'lz4'",
    ]);
  });
});

describe('notCopyData', () => {
  test('table data with a COPY statement is COPY data; large objects and data without one are not', () => {
    const table = entry({
      dumpId: 3,
      hadDumper: true,
      desc: 'TABLE DATA',
      tag: 't',
      copyStmt: 'COPY t FROM stdin;',
    });
    expect(notCopyData([table, entry({ dumpId: 4, desc: 'SEQUENCE SET' })])).toBeUndefined();
    expect(notCopyData([table, entry({ dumpId: 5, hadDumper: true, desc: 'BLOBS', tag: 'BLOBS' })])).toBe(
      'BLOBS BLOBS is not COPY data',
    );
    expect(notCopyData([entry({ dumpId: 6, hadDumper: true, desc: 'TABLE DATA', tag: 'u' })])).toBe(
      'TABLE DATA u is not COPY data',
    );
  });
});

describe('copyStatement', () => {
  test("pg_dump's statement, with the archive's encoding named when it is not UTF8", () => {
    const stmt = 'COPY "schéma"."tá" (id, "cö") FROM stdin;\n';
    expect(copyStatement(stmt, 'UTF8')).toBe(stmt);
    expect(copyStatement(stmt, undefined)).toBe(stmt);
    expect(copyStatement(stmt, 'LATIN1')).toBe(
      `COPY "schéma"."tá" (id, "cö") FROM stdin WITH (ENCODING 'LATIN1');`,
    );
    expect(copyStatement('COPY public.t  FROM stdin;\n', 'EUC_JP')).toBe(
      "COPY public.t FROM stdin WITH (ENCODING 'EUC_JP');",
    );
    expect(() => copyStatement('COPY t FROM stdin WITH OIDS;', 'LATIN1')).toThrow(
      "a COPY statement not of pg_dump's form: COPY t FROM stdin WITH OIDS;",
    );
  });
});

describe('namesNotExact', () => {
  const encoding = (name: string) =>
    entry({ dumpId: 1, desc: 'ENCODING', defn: `SET client_encoding = '${name}';\n` });
  const table = entry({ dumpId: 3, hadDumper: true, desc: 'TABLE DATA', namespace: 'public', tag: 'tá' });
  test('names decoded exactly from a decodable encoding: the COPY sessions send them', () => {
    for (const name of ['UTF8', 'LATIN1', 'WIN1252', 'EUC_JP', 'KOI8R']) {
      expect(namesNotExact([encoding(name), table])).toBeUndefined();
    }
    expect(namesNotExact([table])).toBeUndefined(); // no ENCODING entry: UTF8
  });
  test('an encoding with no exact decoder, or a name not exactly decodable, is left to pg_restore', () => {
    expect(namesNotExact([encoding('SQL_ASCII'), table])).toBe(
      'its encoding is SQL_ASCII (bytes of no stated encoding)',
    );
    expect(namesNotExact([encoding('EUC_TW'), table])).toBe(
      'its encoding EUC_TW has no exact decoder in pgferry',
    );
    expect(namesNotExact([encoding('WIN1252'), { ...table, tag: 't\ufffd', undecodable: true }])).toBe(
      'TABLE DATA public.t\ufffd has a name with no exact Unicode equivalent in its encoding WIN1252',
    );
  });
});
