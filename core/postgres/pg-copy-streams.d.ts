/** COPY through node-postgres (no types of its own): the part core/postgres/copy-load.ts uses. */
declare module 'pg-copy-streams' {
  import type { Writable } from 'node:stream';
  import type { Submittable } from 'pg';

  /** A `COPY … FROM STDIN` query to pass to `client.query`; write its data, end it, await 'finish'. */
  interface CopyFromStream extends Writable, Submittable {
    /** The rows the server loaded (its command tag), once finished. */
    rowCount: number;
  }
  export function from(sql: string): CopyFromStream;
}
