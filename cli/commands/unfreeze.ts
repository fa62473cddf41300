import type { Command } from 'commander';
import { describeConnection, parseConnectionUrl } from '../../core/connection';
import { localPassword } from '../../core/credentials';
import { withClient } from '../../core/postgres/connect';
import { allowWrites, readOnlySetting, thawDatabase } from '../../core/postgres/read-only';
import { printable } from '../output';
import { commandSummary } from './index';

export function registerUnfreeze(program: Command): void {
  program
    .command('unfreeze')
    .description(commandSummary('unfreeze'))
    .requiredOption('--source <url>', 'postgres://user:password@host:port/database')
    .action(async (opts: { source: string }) => unfreezeCommand(opts));
}

/**
 * Resets the database's own `default_transaction_read_only` (the freeze's setting). Sessions
 * connected while it was frozen stay read-only until they reconnect.
 */
async function unfreezeCommand(opts: { source: string }): Promise<void> {
  const { connection, password } = parseConnectionUrl(opts.source, '--source');
  const where = printable(describeConnection(connection));
  const was = await withClient(connection, localPassword(password, 'source', process.env), async (client) => {
    await allowWrites(client);
    const setting = await readOnlySetting(client);
    await thawDatabase(client, connection.database, null);
    return setting;
  });
  process.stdout.write(
    was === 'on'
      ? `${where} is writable again (sessions that connected while it was frozen stay read-only until they reconnect)\n`
      : `${where} was not frozen: nothing to do\n`,
  );
}
