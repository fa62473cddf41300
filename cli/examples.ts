/**
 * The examples every command's help ends with (and docs/commands.md shows): whole command lines a
 * user can run as they are. Kept apart from commander so that the pure pieces test without it.
 */

/** A command line a user can run as it is, and what it does. */
export interface Example {
  /** The whole line, starting with `pgferry` (or a shell line that runs it). */
  readonly line: string;
  readonly does: string;
}

/**
 * Examples per command, by command name (`''` is the program's own help). They use the placeholders
 * a reader recognises (`db.example.com`, `my-backups`) and flags as they are defined; a unit test
 * parses every one with the real definitions, so a renamed flag fails it.
 */
export const EXAMPLES: Readonly<Record<string, readonly Example[]>> = {
  '': [
    {
      line: 'PGPASSWORD=secret pgferry backup --source postgres://app@db.example.com/shop --store ./backups',
      does: 'back up the database shop into the folder ./backups',
    },
    { line: 'pgferry list --store ./backups', does: 'list the backups there, newest first' },
    {
      line: 'pgferry restore --store ./backups --backup latest --name shop --target postgres://app@localhost/shop_copy',
      does: 'restore the newest backup of shop into a new database',
    },
  ],
  backup: [
    {
      line: 'pgferry backup --all-databases --source postgres://postgres@db1:5432/ --store ./backups',
      does: 'every database of the server and its roles, as one backup set',
    },
    {
      line: 'PGPASSWORD=secret pgferry backup --source postgres://app@db.example.com/shop --store ./backups',
      does: 'back up shop into a local folder (the password from PGPASSWORD, else ~/.pgpass)',
    },
    {
      line: 'pgferry backup --source postgres://app@db.example.com/shop --store s3://my-backups/pg --compress zstd:6',
      does: 'into an S3 bucket, compressed harder',
    },
    {
      line: 'pgferry backup --source postgres://app@db.example.com/shop --store ./backups --jobs 4',
      does: "four pg_dumps at once in one snapshot, each storing its share of the tables' data",
    },
    {
      line:
        'pgferry backup --aws --source postgres://app@shop.abc123.eu-west-1.rds.amazonaws.com/shop ' +
        '--store s3://my-backups/pg --password-secret-arn arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-db',
      does: 'run the backup on the deployed stack (AWS_REGION or the AWS profile names the region)',
    },
  ],
  list: [
    { line: 'pgferry list --store ./backups', does: 'every complete backup, newest first' },
    {
      line: 'pgferry list --store s3://my-backups/pg --name shop --since 7d',
      does: "shop's backups of the last seven days",
    },
    { line: 'pgferry list --store ./backups --json', does: 'the same as JSON (shape in docs/user-guide.md)' },
    { line: 'pgferry list --aws', does: "the backups in the deployed stack's store" },
  ],
  show: [
    {
      line: 'pgferry show --store ./backups --backup latest --name shop',
      does: 'the newest backup of shop: its tables, tier, restores and verifications',
    },
    {
      line: 'pgferry show --store ./backups --backup 20261201T233222Z-192bb4 --json',
      does: 'one backup by id, as JSON',
    },
  ],
  status: [
    {
      line: 'pgferry status --store ./backups',
      does: "the age of each name's newest and newest verified backup",
    },
    {
      line: 'pgferry status --store s3://my-backups/pg --max-age 36h --max-verified-age 8d',
      does: 'exit 1 when a backup or a verification is overdue (for cron or a monitor)',
    },
  ],
  prune: [
    { line: 'pgferry prune --store ./backups --dry-run', does: 'what the retention policy would delete' },
    {
      line: 'pgferry prune --store ./backups --keep-daily 14 --keep-yearly 5',
      does: 'delete what a longer policy does not keep',
    },
  ],
  pin: [
    {
      line: 'pgferry pin shop latest --store ./backups --reason before-release-2.0',
      does: "keep shop's newest backup whatever the retention policy says",
    },
  ],
  unpin: [
    {
      line: 'pgferry unpin shop 20261201T020000Z-1a2b3c --store ./backups',
      does: 'let retention (the next prune, S3 lifecycle) apply to it again',
    },
  ],
  restore: [
    {
      line: 'pgferry restore --set latest --store ./backups --target postgres://postgres@new-db:5432/',
      does: 'the newest backup set into a server: its roles, then every database',
    },
    {
      line: 'pgferry restore --store ./backups --backup latest --name shop --target postgres://app@localhost/shop_copy',
      does: 'the newest backup of shop into a new database shop_copy',
    },
    {
      line:
        'pgferry restore --store ./backups --backup 20261201T233222Z-192bb4 ' +
        '--target postgres://app@localhost/shop --mode clean --force',
      does: 'replace the contents of an existing database (after a safety backup of it)',
    },
  ],
  verify: [
    {
      line: 'pgferry verify --store ./backups --backup latest --name shop',
      does: 'restore the newest backup of shop into a throwaway server and check it',
    },
  ],
  migrate: [
    {
      line:
        'pgferry migrate --source postgres://app@old.example.com/shop ' +
        '--target postgres://app@new.example.com/shop --store ./backups',
      does: 'move shop to another server (or major), keeping the backup it moved',
    },
    {
      line:
        'pgferry migrate --source postgres://postgres@old.example.com/postgres ' +
        '--target postgres://postgres@new.example.com/postgres --store ./backups --all-databases --freeze-source',
      does: 'every database and role of a server, the source read-only until the end',
    },
    {
      line:
        'pgferry migrate --source postgres://app@old.example.com/shop ' +
        '--target postgres://postgres@new.example.com/shop --store ./backups --online',
      does: 'copy while writes go on (logical replication); writes stop only for the cutover',
    },
  ],
  unfreeze: [
    {
      line: 'pgferry unfreeze --source postgres://app@old.example.com/shop',
      does: 'make a migrated source writable again (an online cutover leaves it read-only)',
    },
  ],
  serve: [
    {
      line: 'pgferry serve --store ./backups',
      does: 'serve the API and the web console on http://127.0.0.1:8470; open the sign-in link it prints',
    },
    {
      line: 'pgferry serve --store ./backups --webhook https://ci.example.com/hooks/pgferry',
      does: 'and POST each finished run (Backup Succeeded, Migration Failed, …) to a webhook',
    },
  ],
  completion: [
    { line: 'source <(pgferry completion bash)', does: 'complete pgferry in this bash session' },
    {
      line: 'pgferry completion bash > ~/.local/share/bash-completion/completions/pgferry',
      does: 'in every new bash session',
    },
    {
      line: 'pgferry completion zsh > ~/.zfunc/_pgferry',
      does: 'in zsh (with fpath+=~/.zfunc before compinit)',
    },
    {
      line: 'pgferry completion fish > ~/.config/fish/completions/pgferry.fish',
      does: 'in fish',
    },
  ],
};

/**
 * `line` in lines of at most `width`, continued with ` \\` for the shell: broken before an option
 * (with its value), or between an option and its value when the two do not fit on a line.
 */
export function shellLines(line: string, width: number): string[] {
  const chunks = line.split(/ (?=--)/);
  const lines: string[] = [];
  let current = '';
  const fits = (text: string) => text.length + 2 <= width;
  for (const chunk of chunks) {
    // A chunk that fits neither this line nor a line of its own is broken into its words.
    const words = fits(`${current} ${chunk}`) || fits(`    ${chunk}`) ? [chunk] : chunk.split(' ');
    for (const word of words) {
      if (current === '') current = word;
      else if (fits(`${current} ${word}`)) current += ` ${word}`;
      else {
        lines.push(`${current} \\`);
        current = `    ${word}`;
      }
    }
  }
  lines.push(current);
  return lines;
}
