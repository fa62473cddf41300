/**
 * pgferry's commands, in the order the help lists them, each with the one line that describes it
 * and how to load it.
 *
 * A command's module is loaded only when that command runs (or when its full definition is
 * wanted: its help, the completion script, the command reference). The modules import the core —
 * the zod contracts above all — and loading them all cost about 0.15 s of every start, so
 * `pgferry --version`, `pgferry --help` and every command paid for the six it did not run. This
 * file and the commander program built from it load no core module that builds a zod schema
 * (test/integration/cli/commands/index.test.ts).
 */
import type { Command } from 'commander';
import type { AwsAccess } from '../aws/clients';

export interface CommandEntry {
  name: string;
  /** The line in `pgferry --help`; the module gives its command the same one. */
  summary: string;
  /** Its operands as the module declares them (`<name> <backup>`), for the program's list. */
  operands?: string;
  /** Defines the command, its options and its action, on `program`. */
  register(program: Command, aws: AwsAccess): void;
}

// `require`, not `import()`: commander's program is built synchronously, and a static `import`
// would load every module up front, which is what this file exists to avoid.
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'backup',
    summary:
      'Back up one database, or with --all-databases a whole server as a backup set (runs the backup workflow locally)',
    register: (program, aws) =>
      (require('./backup') as typeof import('./backup')).registerBackup(program, aws),
  },
  {
    name: 'list',
    summary: 'List complete backups, newest first, with their retention tier and verification',
    register: (program, aws) => (require('./list') as typeof import('./list')).registerList(program, aws),
  },
  {
    name: 'show',
    summary: 'Show one backup: its manifest, retention tier, and restore and verification reports',
    register: (program) => (require('./show') as typeof import('./show')).registerShow(program),
  },
  {
    name: 'status',
    summary:
      'Show, per database, the age of the newest complete and of the newest verified backup; exit 1 when too old, ' +
      'or when a backup is unreadable or dated after now',
    register: (program) => (require('./status') as typeof import('./status')).registerStatus(program),
  },
  {
    name: 'prune',
    summary:
      'Delete the backups the retention policy no longer keeps (for stores without S3 lifecycle rules)',
    register: (program) => (require('./prune') as typeof import('./prune')).registerPrune(program),
  },
  {
    name: 'pin',
    operands: '<name> <backup>',
    summary:
      'Keep one backup whatever the retention policy says, until unpin (prune and S3 lifecycle pass it by)',
    register: (program) => (require('./pin') as typeof import('./pin')).registerPin(program),
  },
  {
    name: 'unpin',
    operands: '<name> <backup>',
    summary: 'Let retention apply to a pinned backup again (the next prune may delete it)',
    register: (program) => (require('./pin') as typeof import('./pin')).registerUnpin(program),
  },
  {
    name: 'restore',
    summary:
      'Restore a backup into a database, or with --set a backup set into a server (runs the restore workflow locally)',
    register: (program, aws) =>
      (require('./restore') as typeof import('./restore')).registerRestore(program, aws),
  },
  {
    name: 'verify',
    summary: 'Restore drill: restore a backup into a throwaway server of its major and check it',
    register: (program, aws) =>
      (require('./verify') as typeof import('./verify')).registerVerify(program, aws),
  },
  {
    name: 'migrate',
    summary:
      'Move a database (or all of a server) to another server or major version, archived, verified and reported',
    register: (program, aws) =>
      (require('./migrate') as typeof import('./migrate')).registerMigrate(program, aws),
  },
  {
    name: 'unfreeze',
    summary:
      'Make a source database a migration froze writable again (an online migration leaves it read-only after the cutover)',
    register: (program) => (require('./unfreeze') as typeof import('./unfreeze')).registerUnfreeze(program),
  },
  {
    name: 'serve',
    summary:
      'Serve the HTTP API and the web console on this machine: start backups, restores, verifications and ' +
      'migrations with POST, follow them with GET, read the catalog (every request needs the bearer token, ' +
      'or the console session its one-time sign-in link opens)',
    register: (program) => (require('./serve') as typeof import('./serve')).registerServe(program),
  },
];

/** The one line describing command `name` (each command module gives its command this line). */
export function commandSummary(name: string): string {
  const entry = COMMANDS.find((command) => command.name === name);
  if (entry === undefined) throw new Error(`no command ${name} in cli/commands/index.ts`);
  return entry.summary;
}

/**
 * The command `argv` runs (`pgferry [options] <command> …`, or `pgferry help <command>`), or
 * undefined when it runs none (`--version`, `--help`, no arguments). The program's own options
 * take no values, so the first word that is not an option is the command.
 */
export function commandNameOf(args: readonly string[]): string | undefined {
  const words = args.filter((arg) => !arg.startsWith('-'));
  return words[0] === 'help' ? words[1] : words[0];
}
