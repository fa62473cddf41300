/** Quoting for the SQL and the libpq connection strings pgferry writes. */

/** An SQL identifier, always quoted: `"name"`. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** An SQL string literal (standard_conforming_strings): `'value'`. */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** libpq conninfo value quoting: a database name is never parsed as a connection string. */
export function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
