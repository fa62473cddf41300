/**
 * The decoders of PostgreSQL's server encodings (core/postgres/server-encodings.ts) at the points
 * where WHATWG's encodings are not PostgreSQL's; every character is compared with real servers'
 * conversions in test/integration/core/postgres/server-encodings.test.ts.
 */
import { argumentBytes } from '../../../../core/byte-arguments';
import {
  encodeName,
  nameDecoder,
  namesUndecodable,
  selectionArguments,
  unmatchableSelection,
} from '../../../../core/postgres/server-encodings';

const decode = (encoding: string, hex: string) => {
  const bytes = Buffer.from(hex, 'hex');
  return nameDecoder(encoding)?.(bytes, 0, bytes.length);
};

test("LATIN1 and LATIN5 are ISO 8859's, not WHATWG's windows-1252 and -1254 of their labels", () => {
  expect(decode('LATIN1', '74e1')).toBe('tá');
  expect(decode('LATIN1', '80ff')).toBe('\u0080ÿ'); // a C1 control, not €
  expect(decode('LATIN5', '80fd')).toBe('\u0080ı'); // ı: 0xFD in ISO 8859-9
  expect(decode('LATIN9', 'a4')).toBe('€');
});

test("windows code pages: the bytes they define, not those PostgreSQL refuses (WHATWG's C1 controls)", () => {
  expect(decode('WIN1252', '74808e89')).toBe('t€Ž‰');
  expect(decode('WIN1252', '7481')).toBeUndefined();
  expect(decode('WIN1252', '9d')).toBeUndefined();
  expect(decode('WIN1253', 'aa')).toBeUndefined(); // WHATWG: ª; PostgreSQL: none
  expect(decode('WIN1251', 'c0')).toBe('А');
  expect(decode('KOI8R', 'd4c1c2ccc9c3c1')).toBe('таблица');
  expect(decode('WIN866', '80')).toBe('А');
});

test('EUC_JP and EUC_KR: JIS X 0208, half-width katakana and KS X 1001, without the rows PostgreSQL maps otherwise', () => {
  expect(decode('EUC_JP', 'c9bdb9c3')).toBe('表甲');
  expect(decode('EUC_JP', '8eb6')).toBe('ｶ');
  expect(decode('EUC_JP', 'adf0')).toBeUndefined(); // NEC row 13: not back to these bytes
  expect(decode('EUC_JP', 'f9a1')).toBeUndefined(); // IBM extensions
  expect(decode('EUC_JP', '8fb0a1')).toBeUndefined(); // JIS X 0212
  expect(decode('EUC_JP', '8ee0')).toBeUndefined();
  expect(decode('EUC_JP', 'c9')).toBeUndefined(); // a character cut short
  expect(decode('EUC_KR', 'c5d7c0ccbaed')).toBe('테이블');
  expect(decode('EUC_KR', 'c9a1')).toBeUndefined(); // user-defined
  expect(decode('UTF8', '74c3a1')).toBe('tá');
  expect(decode('UTF8', '74e1')).toBeUndefined();
});

test('encodings with no exact decoder: a reason each, for the slow path', () => {
  for (const encoding of ['SQL_ASCII', 'MULE_INTERNAL', 'EUC_TW', 'EUC_JIS_2004', 'EUC_CN', 'LATIN10']) {
    expect(nameDecoder(encoding)).toBeUndefined();
    expect(namesUndecodable(encoding)).toMatch(/SQL_ASCII|has no exact decoder/);
  }
  for (const encoding of [undefined, 'UTF8', 'LATIN1', 'WIN1252', 'EUC_JP', 'EUC_KR', 'KOI8R', 'KOI8U']) {
    expect(namesUndecodable(encoding)).toBeUndefined();
  }
});

const hex = (bytes: Uint8Array | undefined) => (bytes ? Buffer.from(bytes).toString('hex') : undefined);

test("a name's bytes in an encoding: the exact inverse of its decoder, or none", () => {
  expect(hex(encodeName('tá', 'LATIN1'))).toBe('74e1');
  expect(hex(encodeName('tà', 'LATIN1'))).toBe('74e0');
  expect(hex(encodeName('\u0080', 'LATIN1'))).toBe('80');
  expect(encodeName('€', 'LATIN1')).toBeUndefined();
  expect(hex(encodeName('t€Ž', 'WIN1252'))).toBe('74808e');
  expect(hex(encodeName('таблица', 'KOI8R'))).toBe('d4c1c2ccc9c3c1');
  expect(hex(encodeName('表甲ｶ', 'EUC_JP'))).toBe('c9bdb9c38eb6');
  expect(hex(encodeName('테이블', 'EUC_KR'))).toBe('c5d7c0ccbaed');
  expect(encodeName('tá', 'EUC_JP')).toBeUndefined(); // JIS X 0212 (0x8F), not decoded
  expect(encodeName('①', 'EUC_JP')).toBeUndefined(); // NEC row 13, not decoded
  expect(encodeName('ș', 'LATIN10')).toBeUndefined(); // no decoder
  expect(hex(encodeName('tá', 'UTF8'))).toBe('74c3a1');
  expect(hex(encodeName('plain', 'EUC_TW'))).toBeUndefined(); // no decoder, ASCII or not
});

test('every character an encoding decodes to is encoded back to the same bytes', () => {
  for (const encoding of ['LATIN1', 'LATIN5', 'WIN1252', 'WIN1253', 'KOI8U', 'WIN874', 'EUC_JP', 'EUC_KR']) {
    const decode = nameDecoder(encoding) as NonNullable<ReturnType<typeof nameDecoder>>;
    const sequences: number[][] = [];
    // A single-byte encoding's bytes; an EUC encoding's two-byte characters (what PostgreSQL
    // accepts in it: a first byte 0xA1–0xFE, or EUC_JP's 0x8E).
    if (!encoding.startsWith('EUC')) for (let b = 0x80; b <= 0xff; b++) sequences.push([b]);
    else {
      for (let lead = encoding === 'EUC_JP' ? 0x8e : 0xa1; lead <= 0xfe; lead++) {
        if (lead > 0x8e && lead < 0xa1) continue;
        for (let s = 0xa1; s <= 0xfe; s++) sequences.push([lead, s]);
      }
    }
    let decoded = 0;
    for (const sequence of sequences) {
      const bytes = Uint8Array.from(sequence);
      const char = decode(bytes, 0, bytes.length);
      if (char === undefined || [...char].length !== 1) continue;
      decoded++;
      expect([encoding, hex(encodeName(char, encoding))]).toEqual([encoding, hex(bytes)]);
    }
    expect(decoded).toBeGreaterThan(90);
  }
});

test("a restore's selection: refused where a name cannot be converted exactly, else pg_restore's arguments in the archive's bytes", () => {
  const selection = { schemas: ['ésquema'], tables: ['tá', 'plain'] };
  expect(unmatchableSelection('LATIN1', selection)).toBeUndefined();
  expect(
    selectionArguments('LATIN1', selection).map((a) => Buffer.from(argumentBytes(a)).toString('latin1')),
  ).toEqual(['--schema=\u00e9squema', '--table=t\u00e1', '--table=plain']);
  expect(hex(argumentBytes(selectionArguments('LATIN1', selection)[1]))).toBe(
    `${Buffer.from('--table=t').toString('hex')}e1`,
  );
  for (const encoding of [undefined, 'UTF8', 'SQL_ASCII']) {
    expect(unmatchableSelection(encoding, selection)).toBeUndefined();
    expect(selectionArguments(encoding, selection)).toEqual([
      '--schema=ésquema',
      '--table=tá',
      '--table=plain',
    ]);
  }
  expect(unmatchableSelection('EUC_TW', { schemas: [], tables: ['plain'] })).toBeUndefined();
  expect(selectionArguments('EUC_TW', { schemas: [], tables: ['plain'] })).toEqual(['--table=plain']);
  expect(unmatchableSelection('EUC_TW', selection)).toBe(
    '--schema "ésquema" cannot be matched exactly with the backup\'s names: its database is in EUC_TW, and ' +
      'pgferry has no exact conversion of names to EUC_TW; restore the whole backup, or back up just that ' +
      'schema or table (backup --schema, --table) and restore that; nothing was restored',
  );
  expect(unmatchableSelection('EUC_JP', { schemas: [], tables: ['表', 'tá'] })).toMatch(
    /^--table "tá" cannot be matched exactly with the backup's names: its database is in EUC_JP, and a character of it has no exact equivalent in EUC_JP;/,
  );
});
