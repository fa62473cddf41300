/**
 * The decoders of PostgreSQL's server encodings (core/postgres/server-encodings.ts) at the points
 * where WHATWG's encodings are not PostgreSQL's; every character is compared with real servers'
 * conversions in test/integration/core/postgres/server-encodings.test.ts.
 */
import { nameDecoder, namesUndecodable } from '../../../../core/postgres/server-encodings';

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
