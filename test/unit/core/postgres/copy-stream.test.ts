import type { ArchiveTocEntry } from '../../../../core/postgres/archive';
import { copySessionSetup, notCopyData } from '../../../../core/postgres/copy-stream';

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
  test("pg_restore's session settings: the archive's encoding and string syntax, then the fixed ones and the load's", () => {
    const toc = [
      entry({ dumpId: 1, desc: 'ENCODING', defn: "SET client_encoding = 'LATIN1';\n" }),
      entry({ dumpId: 2, desc: 'STDSTRINGS', defn: "SET standard_conforming_strings = 'on';\n" }),
    ];
    expect(copySessionSetup(toc, [['default_toast_compression', 'lz4']])).toEqual([
      "SET client_encoding = 'LATIN1'",
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
