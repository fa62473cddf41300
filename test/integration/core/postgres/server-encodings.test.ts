/**
 * The decoders of core/postgres/server-encodings.ts against PostgreSQL's own conversions, on real
 * servers of each tested major: every character of every server encoding (each byte 0x80–0xFF of a
 * single-byte one; each two-byte character, each 0x8E and 0x8F one of an EUC one) that a decoder
 * decodes is what the server converts it to in UTF8, and converts back to the same bytes. A
 * single-byte encoding's decoder leaves out only bytes the server does not convert; the EUC ones
 * decode most of their two-byte characters.
 */
import { nameDecoder, namesUndecodable } from '../../../../core/postgres/server-encodings';
import { testEnv, withClient } from '../../../support/env';

const env = testEnv();

const SINGLE_BYTE = [
  'LATIN1',
  'LATIN2',
  'LATIN3',
  'LATIN4',
  'LATIN5',
  'LATIN6',
  'LATIN7',
  'LATIN8',
  'LATIN9',
  'LATIN10',
  'ISO_8859_5',
  'ISO_8859_6',
  'ISO_8859_7',
  'ISO_8859_8',
  'KOI8R',
  'KOI8U',
  'WIN866',
  'WIN874',
  'WIN1250',
  'WIN1251',
  'WIN1252',
  'WIN1253',
  'WIN1254',
  'WIN1255',
  'WIN1256',
  'WIN1257',
  'WIN1258',
];
const EUC = ['EUC_JP', 'EUC_KR', 'EUC_CN', 'EUC_JIS_2004', 'EUC_TW'];

function characters(encoding: string): Buffer[] {
  const out: Buffer[] = [];
  if (SINGLE_BYTE.includes(encoding)) {
    for (let b = 0x80; b <= 0xff; b++) out.push(Buffer.of(b));
    return out;
  }
  for (let a = 0xa1; a <= 0xfe; a++) for (let b = 0xa1; b <= 0xfe; b++) out.push(Buffer.of(a, b));
  for (let b = 0xa1; b <= 0xfe; b++) out.push(Buffer.of(0x8e, b));
  for (let a = 0xa1; a <= 0xfe; a++) for (let b = 0xa1; b <= 0xfe; b++) out.push(Buffer.of(0x8f, a, b));
  return out;
}

describe.each(env.postgres.map((pg) => [pg.major, pg] as const))('PostgreSQL %i', (_major, pg) => {
  test.each([...SINGLE_BYTE, ...EUC])("%s: a decoded character is the server's", async (encoding) => {
    const chars = characters(encoding);
    // The server's UTF8 of each character, or null when it converts it to none, or not back.
    const server = await withClient(pg, 'postgres', async (c) => {
      await c.query(`CREATE FUNCTION pg_temp.exact(b bytea, e name) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE t text;
        BEGIN
          t := convert_from(b, e);
          RETURN CASE WHEN convert_to(t, e) = b THEN t END;
        EXCEPTION WHEN others THEN RETURN NULL;
        END $$`);
      const { rows } = await c.query<{ t: string | null }>(
        'SELECT pg_temp.exact(b, $2) AS t FROM unnest($1::bytea[]) WITH ORDINALITY u(b, i) ORDER BY i',
        [chars, encoding],
      );
      return rows.map((r) => r.t);
    });
    const decoder = nameDecoder(encoding);
    const wrong: string[] = [];
    let decodedChars = 0;
    let serverChars = 0;
    chars.forEach((bytes, i) => {
      const ours = decoder?.(bytes, 0, bytes.length);
      // JIS X 0212 (EUC_JP's 0x8F) is left out as a whole.
      if (server[i] !== null && bytes.length < 3) serverChars++;
      if (ours === undefined) return;
      decodedChars++;
      if (ours !== server[i])
        wrong.push(`${bytes.toString('hex')}: ${JSON.stringify(ours)}, not ${JSON.stringify(server[i])}`);
    });
    expect(wrong).toEqual([]);
    if (!decoder) {
      expect(namesUndecodable(encoding)).toBeDefined();
    } else if (SINGLE_BYTE.includes(encoding)) {
      expect(decodedChars).toBe(serverChars);
    } else {
      expect(decodedChars).toBeGreaterThan(serverChars * 0.9);
    }
  });
});
