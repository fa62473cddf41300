/** The password-file reader node-postgres itself uses (no types of its own). */
declare module 'pgpass' {
  /** Calls `found` with the password the file (PGPASSFILE, else ~/.pgpass) holds for the connection, if any. */
  function pgpass(
    connection: { host?: string; port?: number | string; database?: string; user?: string },
    found: (password: string | undefined) => void,
  ): void;
  export = pgpass;
}
