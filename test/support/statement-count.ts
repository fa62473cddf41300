/**
 * A client that counts the statements sent through it: what a test of a batched read or write
 * (so many objects to a statement, not one round trip each) checks.
 */
import type { Client } from 'pg';

/** `client` as `counted`, and how many `query` calls went through it so far. */
export function countingStatements(client: Client): { counted: Client; statements: () => number } {
  let n = 0;
  const query = client.query.bind(client);
  const counted = Object.assign(Object.create(client), {
    query: (...args: Parameters<Client['query']>) => {
      n++;
      return query(...args);
    },
  }) as Client;
  return { counted, statements: () => n };
}
