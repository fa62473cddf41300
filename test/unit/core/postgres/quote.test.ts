/** Quoting: a name stays one value, whatever it holds. */
import { conninfoValue, quoteIdent, quoteLiteral } from '../../../../core/postgres/quote';

test('quoteLiteral and conninfoValue keep a name one value', () => {
  expect(quoteLiteral("it's")).toBe("'it''s'");
  expect(conninfoValue("db' host=evil")).toBe("'db\\' host=evil'");
  expect(conninfoValue('a\\b')).toBe("'a\\\\b'");
});

test('quoteIdent always quotes, doubling the double quotes inside', () => {
  expect(quoteIdent('plain')).toBe('"plain"');
  expect(quoteIdent('Mixed "Case"')).toBe('"Mixed ""Case"""');
});
