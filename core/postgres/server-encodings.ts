/**
 * PostgreSQL's server encodings as this process reads names in them. A dump's archive holds its
 * names (tags, schemas, COPY statements) as bytes in the database's encoding; they are decoded here
 * into Unicode, which the sessions send as UTF-8 and the server converts back. So a name is decoded
 * only where the decoding is exact: each character the one PostgreSQL's own conversion to UTF8
 * gives, and converted back to the same bytes. Elsewhere there is no decoder, and the archive is
 * left to pg_restore, which sends its bytes as they are.
 *
 * Decoders are Node's `TextDecoder` (WHATWG encodings, full ICU), corrected where WHATWG's
 * encodings are not PostgreSQL's — checked against real servers character by character
 * (test/integration/core/postgres/server-encodings.test.ts):
 *
 * - WHATWG's `iso-8859-1` and `iso-8859-9` are windows-1252 and windows-1254: PostgreSQL's LATIN1
 *   and LATIN5 map 0x80–0x9F to the C1 controls, as every ISO 8859 encoding does;
 * - windows-125x and 874 leave some bytes undefined, which PostgreSQL refuses to convert but WHATWG
 *   passes as C1 controls (or private use characters), and WIN1253's 0xAA: no exact name holds them;
 * - EUC_JP: NEC's row 13 (0xAD) converts to UTF8 but not back to the same bytes, IBM's extensions
 *   (0xF9–0xFC) and some JIS X 0212 characters (0x8F) PostgreSQL maps otherwise or not at all, as
 *   0x8E 0xE0–0xE2, and the user-defined rows (0xF5–0xFE) are private: these are not decoded;
 * - EUC_KR: the user-defined rows (0xC9, 0xFE), private use in WHATWG, PostgreSQL does not convert.
 *
 * Not decoded: SQL_ASCII (bytes of no stated encoding), MULE_INTERNAL, EUC_TW and EUC_JIS_2004
 * (no WHATWG decoder), EUC_CN (WHATWG's is GBK, which maps GB2312's characters otherwise in places),
 * LATIN10 (no ISO-8859-16 decoder in Node).
 *
 * The preflights' sizing (core/task-size.ts) asks {@link namesUndecodable} too, and the restore
 * preflights {@link unmatchableSelection}: its one import, core/byte-arguments.ts, imports nothing.
 */
import { bytesArgument } from '../byte-arguments';

/** The bytes `[start, end)` of a name, decoded exactly; undefined when they cannot be. */
export type NameDecoder = (bytes: Uint8Array, start: number, end: number) => string | undefined;

/** Single-byte encodings: the WHATWG label whose bytes 0xA0–0xFF are PostgreSQL's, and its kind. */
const SINGLE_BYTE: Record<string, { label: string; iso: boolean; undefinedBytes?: number[] }> = {
  LATIN1: { label: 'iso-8859-1', iso: true },
  LATIN2: { label: 'iso-8859-2', iso: true },
  LATIN3: { label: 'iso-8859-3', iso: true },
  LATIN4: { label: 'iso-8859-4', iso: true },
  LATIN5: { label: 'iso-8859-9', iso: true },
  LATIN6: { label: 'iso-8859-10', iso: true },
  LATIN7: { label: 'iso-8859-13', iso: true },
  LATIN8: { label: 'iso-8859-14', iso: true },
  LATIN9: { label: 'iso-8859-15', iso: true },
  ISO_8859_5: { label: 'iso-8859-5', iso: true },
  ISO_8859_6: { label: 'iso-8859-6', iso: true },
  ISO_8859_7: { label: 'iso-8859-7', iso: true },
  ISO_8859_8: { label: 'iso-8859-8', iso: true },
  KOI8R: { label: 'koi8-r', iso: false },
  KOI8U: { label: 'koi8-u', iso: false },
  WIN866: { label: 'ibm866', iso: false },
  WIN874: { label: 'windows-874', iso: false },
  WIN1250: { label: 'windows-1250', iso: false },
  WIN1251: { label: 'windows-1251', iso: false },
  WIN1252: { label: 'windows-1252', iso: false },
  // 0xAA: WHATWG's windows-1253 has ª there, PostgreSQL's nothing.
  WIN1253: { label: 'windows-1253', iso: false, undefinedBytes: [0xaa] },
  WIN1254: { label: 'windows-1254', iso: false },
  WIN1255: { label: 'windows-1255', iso: false },
  WIN1256: { label: 'windows-1256', iso: false },
  WIN1257: { label: 'windows-1257', iso: false },
  WIN1258: { label: 'windows-1258', iso: false },
};

/** EUC encodings: the WHATWG label, and the characters not decoded (by their first two bytes). */
const EUC: Record<string, { label: string; refused: (lead: number, second: number) => boolean }> = {
  // 0x8E 0xE0–0xE2: WHATWG has ¢ £ ¬ there, PostgreSQL no half-width katakana.
  EUC_JP: {
    label: 'euc-jp',
    refused: (lead, second) =>
      lead === 0x8f || lead === 0xad || lead >= 0xf5 || (lead === 0x8e && second > 0xdf),
  },
  EUC_KR: { label: 'euc-kr', refused: (lead) => lead === 0xc9 || lead === 0xfe },
};

/** Whether `encoding` (PostgreSQL's name) has a decoder here. */
function decoded(encoding: string): boolean {
  return encoding === 'UTF8' || encoding in SINGLE_BYTE || encoding in EUC;
}

/**
 * Why names in `encoding` cannot be decoded exactly here, so that the COPY sessions cannot name the
 * tables (pg_restore loads them), or undefined (an encoding not known is taken as UTF8).
 */
export function namesUndecodable(encoding: string | undefined): string | undefined {
  if (encoding === undefined || decoded(encoding)) return undefined;
  return encoding === 'SQL_ASCII'
    ? 'its encoding is SQL_ASCII (bytes of no stated encoding)'
    : `its encoding ${encoding} has no exact decoder in pgferry`;
}

const decoders = new Map<string, NameDecoder>();

/** The exact decoder of names in `encoding` (PostgreSQL's name), or undefined (see the module). */
export function nameDecoder(encoding: string): NameDecoder | undefined {
  if (!decoded(encoding)) return undefined;
  let decoder = decoders.get(encoding);
  if (!decoder) {
    decoder = makeDecoder(encoding);
    decoders.set(encoding, decoder);
  }
  return decoder;
}

function makeDecoder(encoding: string): NameDecoder {
  const single = SINGLE_BYTE[encoding];
  if (single) return singleByteDecoder(single.label, single.iso, single.undefinedBytes ?? []);
  const euc = EUC[encoding];
  const whatwg = new TextDecoder(euc ? euc.label : 'utf-8', { fatal: true });
  const decode = (bytes: Uint8Array, start: number, end: number) => {
    try {
      return whatwg.decode(bytes.subarray(start, end));
    } catch {
      return undefined;
    }
  };
  if (!euc) return decode;
  return (bytes, start, end) => {
    for (let i = start; i < end; ) {
      const lead = bytes[i];
      if (lead < 0x80) {
        i++;
        continue;
      }
      if (euc.refused(lead, bytes[i + 1] ?? 0)) return undefined;
      i += 2; // EUC_JP's 3-byte characters (0x8F) are refused
    }
    return decode(bytes, start, end);
  };
}

function singleByteDecoder(label: string, iso: boolean, undefinedBytes: number[]): NameDecoder {
  const whatwg = new TextDecoder(label, { fatal: true });
  const high: (string | undefined)[] = [];
  for (let byte = 0x80; byte <= 0xff; byte++) {
    let char: string | undefined;
    if (iso && byte < 0xa0) {
      char = String.fromCharCode(byte);
    } else {
      try {
        char = whatwg.decode(Uint8Array.of(byte));
      } catch {
        char = undefined;
      }
      // A byte the windows code page leaves undefined: WHATWG passes it as a C1 control or a
      // private use character, PostgreSQL refuses it.
      const code = char?.charCodeAt(0) ?? 0;
      if (!iso && ((code >= 0x80 && code < 0xa0) || (code >= 0xe000 && code < 0xf900))) char = undefined;
      if (undefinedBytes.includes(byte)) char = undefined;
    }
    high.push(char);
  }
  return (bytes, start, end) => {
    let text = '';
    for (let i = start; i < end; i++) {
      const byte = bytes[i];
      const char = byte < 0x80 ? String.fromCharCode(byte) : high[byte - 0x80];
      if (char === undefined) return undefined;
      text += char;
    }
    return text;
  };
}

/**
 * When `err` is the server's refusal to convert a name to UTF-8 (SQLSTATE 22P05: a byte its
 * encoding leaves undefined, which the server still took, e.g. WIN1252's 0x81), one line naming
 * the database and what to do; undefined for any other error. pgferry's sessions read the catalog
 * as UTF-8, so such a name cannot be read.
 */
export function untranslatableName(err: unknown, database: string): string | undefined {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (code !== '22P05' || typeof message !== 'string') return undefined;
  const encoding = /in encoding "([^"]+)" has no equivalent in encoding "UTF8"/.exec(message)?.[1];
  if (encoding === undefined) return undefined;
  return (
    `the database ${JSON.stringify(database)} (${encoding}) holds a name with no UTF-8 equivalent ` +
    `(${message}), which pgferry cannot read: rename the schema, table or other object whose name ` +
    'holds it (ALTER … RENAME TO) and try again'
  );
}

/** Whether `text` holds only ASCII characters. */
export function isAscii(text: string): boolean {
  return !/[^\p{ASCII}]/u.test(text);
}

/**
 * Whether a name given as a process argument (UTF-8) reaches pg_dump's and pg_restore's matching as
 * the database's own names: in UTF8, and in SQL_ASCII, whose names are the bytes a client sent (an
 * encoding not known is taken as UTF8). In any other encoding a name other than ASCII does not.
 */
export function argumentsMatchNames(encoding: string | undefined): boolean {
  return encoding === undefined || encoding === 'UTF8' || encoding === 'SQL_ASCII';
}

const encoders = new Map<string, Map<string, Uint8Array>>();

/**
 * The exact inverse of {@link nameDecoder}: each character that some byte sequence of `encoding`
 * decodes to exactly, and those bytes (ASCII is left out: its bytes are its own). Built by decoding
 * every character's bytes: a single-byte encoding's 0x80–0xFF, an EUC encoding's two-byte
 * characters (a first byte 0xA1–0xFE, or EUC_JP's 0x8E, then 0xA1–0xFE). A character two sequences decode to is left
 * out: which of them PostgreSQL gives is not known here.
 */
function encoderOf(encoding: string): Map<string, Uint8Array> | undefined {
  const decode = nameDecoder(encoding);
  if (!decode || encoding === 'UTF8') return undefined;
  let chars = encoders.get(encoding);
  if (chars) return chars;
  const found = new Map<string, Uint8Array | undefined>();
  const add = (bytes: Uint8Array) => {
    const char = decode(bytes, 0, bytes.length);
    if (char === undefined || [...char].length !== 1) return;
    found.set(char, found.has(char) ? undefined : bytes);
  };
  if (encoding in SINGLE_BYTE) {
    for (let byte = 0x80; byte <= 0xff; byte++) add(Uint8Array.of(byte));
  } else {
    // EUC_JP's 0x8E: a half-width katakana follows (EUC_KR has no such byte).
    for (let lead = encoding === 'EUC_JP' ? 0x8e : 0xa1; lead <= 0xfe; lead++) {
      if (lead > 0x8e && lead < 0xa1) continue;
      for (let second = 0xa1; second <= 0xfe; second++) add(Uint8Array.of(lead, second));
    }
  }
  chars = new Map([...found].filter((e): e is [string, Uint8Array] => e[1] !== undefined));
  encoders.set(encoding, chars);
  return chars;
}

/**
 * `name` in `encoding`'s bytes, as the database holds it: the exact inverse of
 * {@link nameDecoder} (the decoding of the bytes is `name`); undefined when a character of it has
 * none (the encoding has no exact decoder, or has not that character exactly). UTF8 and an
 * encoding not known: its UTF-8.
 */
export function encodeName(name: string, encoding: string | undefined): Uint8Array | undefined {
  if (encoding === undefined || !decoded(encoding) || encoding === 'UTF8') {
    return encoding === undefined || encoding === 'UTF8' ? new TextEncoder().encode(name) : undefined;
  }
  const chars = encoderOf(encoding) as Map<string, Uint8Array>;
  const parts: number[] = [];
  for (const char of name) {
    if (char.charCodeAt(0) < 0x80) parts.push(char.charCodeAt(0));
    else {
      const bytes = chars.get(char);
      if (!bytes) return undefined;
      parts.push(...bytes);
    }
  }
  return Uint8Array.from(parts);
}

/** What a restore selects by name (`--schema`, `--table`), as the restore's request gives it. */
export interface NameSelection {
  schemas: readonly string[];
  tables: readonly string[];
}

/**
 * A restore's `--schema` or `--table` name that cannot be matched exactly with the names of an
 * archive of a database in `encoding`, in one line naming it (undefined when every name can).
 * pg_restore compares its selection byte for byte with the archive's names, which are in the
 * database's encoding; so a name other than ASCII is given to it in that encoding
 * ({@link selectionArguments}), which needs the exact inverse of this module's decoders: an
 * encoding without one (MULE_INTERNAL, EUC_TW, EUC_JIS_2004, EUC_CN, LATIN10), or a character the
 * encoding does not hold exactly, cannot be. The restore preflights refuse it, from the manifest's
 * `requires.encoding`, before anything is created.
 */
export function unmatchableSelection(
  encoding: string | undefined,
  selection: NameSelection,
): string | undefined {
  if (argumentsMatchNames(encoding)) return undefined;
  const named = [
    ...selection.schemas.map((name) => ({ option: '--schema', name })),
    ...selection.tables.map((name) => ({ option: '--table', name })),
  ];
  // ASCII is its own bytes in every server encoding.
  const unmatched = named.find(({ name }) => !isAscii(name) && encodeName(name, encoding) === undefined);
  if (unmatched === undefined) return undefined;
  const why = decoded(encoding as string)
    ? `a character of it has no exact equivalent in ${encoding}`
    : `pgferry has no exact conversion of names to ${encoding}`;
  return (
    `${unmatched.option} ${JSON.stringify(unmatched.name)} cannot be matched exactly with the backup's names: ` +
    `its database is in ${encoding}, and ${why}; restore the whole backup, or back up just that ` +
    'schema or table (backup --schema, --table) and restore that; nothing was restored'
  );
}

/**
 * pg_restore's `--schema=` and `--table=` arguments of `selection`, each name in the bytes of the
 * archive's database's `encoding` (see {@link unmatchableSelection}, which must have passed): an
 * argument other than UTF-8 is a {@link bytesArgument}. In UTF8, SQL_ASCII (whose names are the
 * bytes a client sent) and an encoding not known, the names as they are.
 */
export function selectionArguments(encoding: string | undefined, selection: NameSelection): string[] {
  const argument = (option: string, name: string) => {
    if (argumentsMatchNames(encoding) || isAscii(name)) return `${option}=${name}`;
    const bytes = encodeName(name, encoding);
    if (!bytes) throw new Error(`selectionArguments: ${name} has no exact equivalent in ${encoding}`);
    return bytesArgument(`${option}=`, bytes);
  };
  return [
    ...selection.schemas.map((name) => argument('--schema', name)),
    ...selection.tables.map((name) => argument('--table', name)),
  ];
}
