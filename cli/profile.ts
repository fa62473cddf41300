/**
 * Where a command's store, source and target come from when a flag does not give them: the
 * environment (`PGFERRY_STORE`, `PGFERRY_SOURCE`), then the config file's defaults. Precedence is
 * flag > environment > config file, for every command that takes them. A value `@name` — in a
 * flag, a variable or the config's defaults — names an entry of the config file's `stores` or
 * `sources` (`--store @s3`, `--source @shop`, `--target @staging`).
 *
 * The config file is `--config <file>`, else `PGFERRY_CONFIG`, else
 * `$XDG_CONFIG_HOME/pgferry/config.json` (`~/.config/pgferry/config.json`); the default one may
 * be absent, a named one may not. It holds no passwords: a URL with one is refused, as the
 * password belongs in `~/.pgpass` or `PGPASSWORD` (files and variables meant for secrets).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { parseConnectionUrl } from '../core/connection';
import { errorMessage, PgferryError } from '../core/errors';
import { normaliseStoreUrl } from '../core/store';

/** The commands that run a workflow, and so take `--on-success`/`--on-failure`. */
export const HOOKED_COMMANDS = ['backup', 'restore', 'verify', 'migrate'] as const;
export type HookedCommand = (typeof HOOKED_COMMANDS)[number];

const EntryNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a name is letters, digits, _ . - (e.g. s3, shop-eu)');
const HooksSchema = z.strictObject({
  onSuccess: z.string().min(1).optional(),
  onFailure: z.string().min(1).optional(),
});

/** `~/.config/pgferry/config.json`. */
export const ConfigFileSchema = z.strictObject({
  /** An editor's JSON Schema reference; ignored. */
  $schema: z.string().optional(),
  /** Named stores: a folder (relative to the config file's folder, or `~/…`), file:// or s3:// URL. */
  stores: z.record(EntryNameSchema, z.string().min(1)).optional(),
  /** Named databases: postgres:// URLs without a password; `--source @name` and `--target @name`. */
  sources: z.record(EntryNameSchema, z.string().min(1)).optional(),
  /** What a command uses when neither a flag nor the environment says: names of the entries above. */
  defaults: z
    .strictObject({ store: EntryNameSchema.optional(), source: EntryNameSchema.optional() })
    .optional(),
  /** Per command, the shell commands run after a run (as `--on-success`/`--on-failure`). */
  hooks: z.partialRecord(z.enum(HOOKED_COMMANDS), HooksSchema).optional(),
});

/** A config file, read and checked: stores as URLs, sources as password-free URLs. */
export interface PgferryConfig {
  file: string;
  stores: Record<string, string>;
  sources: Record<string, string>;
  defaults: { store?: string; source?: string };
  hooks: Partial<Record<HookedCommand, { onSuccess?: string; onFailure?: string }>>;
}

/** The config file to read: `--config`, else `PGFERRY_CONFIG` (both must exist), else the default (may be absent). */
export function configFilePath(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  home: string = homedir(),
): { file: string; named: boolean } {
  const named = flag ?? nonEmpty(env.PGFERRY_CONFIG);
  if (named !== undefined) return { file: path.resolve(named), named: true };
  const configHome = nonEmpty(env.XDG_CONFIG_HOME) ?? path.join(home, '.config');
  return { file: path.join(configHome, 'pgferry', 'config.json'), named: false };
}

/** Reads and checks the config file; `undefined` when the default one does not exist. */
export function loadConfig(
  where: { file: string; named: boolean },
  home: string = homedir(),
): PgferryConfig | undefined {
  const { file } = where;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !where.named) return undefined;
    throw new PgferryError(
      'InvalidInput',
      code === 'ENOENT'
        ? `the config file ${file} does not exist: check --config and PGFERRY_CONFIG`
        : `cannot read the config file ${file}: ${code ?? errorMessage(err)}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PgferryError('InvalidInput', `${file}: not JSON: ${errorMessage(err)}`);
  }
  return parseConfig(raw, file, home);
}

/** `raw` as a config, or one line naming `file` and the field that is wrong. */
export function parseConfig(raw: unknown, file: string, home: string = homedir()): PgferryConfig {
  const result = ConfigFileSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      const where = at.length ? `${at.join('.')}.` : '';
      throw bad(file, `${where}${issue.keys[0]}`, `unknown field (expected ${expectedKeys(at)})`);
    }
    const problem =
      issue.code === 'invalid_key'
        ? `not a valid name: ${issue.issues[0]?.message}`
        : issue.code === 'invalid_type'
          ? `expected ${issue.expected === 'object' ? 'an object' : `a ${issue.expected}`}`
          : issue.message;
    throw bad(file, at.join('.') || '(top level)', problem);
  }
  const config = result.data;
  const stores: Record<string, string> = {};
  for (const [name, value] of Object.entries(config.stores ?? {})) {
    stores[name] = configStore(value, file, `stores.${name}`, home);
  }
  const sources: Record<string, string> = {};
  for (const [name, value] of Object.entries(config.sources ?? {})) {
    const field = `sources.${name}`;
    let password: string | undefined;
    try {
      password = parseConnectionUrl(value, 'the URL').password;
    } catch (err) {
      throw bad(file, field, errorMessage(err));
    }
    if (password !== undefined) {
      throw bad(
        file,
        field,
        'a password is not kept in the config file: remove it and put it in ~/.pgpass or PGPASSWORD',
      );
    }
    sources[name] = value;
  }
  const defaults = config.defaults ?? {};
  if (defaults.store !== undefined && !(defaults.store in stores)) {
    throw bad(file, 'defaults.store', `names no entry of stores (${namesOf(stores)})`);
  }
  if (defaults.source !== undefined && !(defaults.source in sources)) {
    throw bad(file, 'defaults.source', `names no entry of sources (${namesOf(sources)})`);
  }
  return { file, stores, sources, defaults, hooks: config.hooks ?? {} };
}

/** What a command was given for one setting, and where from. */
export interface Resolved {
  value: string;
  from: 'flag' | 'env' | 'config';
}

/**
 * The store (`setting` "store") or database (`source`, `target`) a command uses: the flag, else
 * the environment variable, else the config's default (no variable and no default for the
 * target: a restore's destination is never implied); `@name` looked up in the config.
 * `undefined` when none gives one.
 */
export function resolveSetting(
  setting: 'store' | 'source' | 'target',
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  config: PgferryConfig | undefined,
): Resolved | undefined {
  const variable = setting === 'target' ? undefined : nonEmpty(env[ENV_VARS[setting]]);
  const fromConfig = setting === 'target' ? undefined : config?.defaults[setting];
  const given: Resolved | undefined =
    flag !== undefined
      ? { value: flag, from: 'flag' }
      : variable !== undefined
        ? { value: variable, from: 'env' }
        : fromConfig !== undefined
          ? { value: `@${fromConfig}`, from: 'config' }
          : undefined;
  if (given === undefined || !given.value.startsWith('@')) return given;
  const name = given.value.slice(1);
  const entries = setting === 'store' ? config?.stores : config?.sources;
  const kind = setting === 'store' ? 'stores' : 'sources';
  const origin =
    given.from === 'env' && setting !== 'target'
      ? `${ENV_VARS[setting]}=${given.value}`
      : `--${setting} ${given.value}`;
  if (config === undefined) {
    throw new PgferryError(
      'InvalidInput',
      `${origin} names an entry of a config file, and there is none: create ${configFilePath(undefined, env).file}, or pass --config <file>`,
    );
  }
  const value = entries?.[name];
  if (value === undefined) {
    throw new PgferryError(
      'InvalidInput',
      `${origin}: ${config.file} has no ${kind}.${name} (${namesOf(entries ?? {})})`,
    );
  }
  return { value, from: given.from };
}

/** The variables a setting may come from. */
export const ENV_VARS = { store: 'PGFERRY_STORE', source: 'PGFERRY_SOURCE' } as const;

/** The one line for a store or source that nothing gave: the three ways to give it. */
export function missingSetting(
  setting: 'store' | 'source',
  env: NodeJS.ProcessEnv,
  configFile?: string,
): Error {
  const what = setting === 'store' ? '--store <store>' : '--source <url>';
  const file = configFile ?? configFilePath(undefined, env).file;
  return new PgferryError(
    'InvalidInput',
    `no ${setting} given: pass ${what}, set ${ENV_VARS[setting]}, or set defaults.${setting} in ${file}`,
  );
}

/** The options the profile fills in, by their attribute names. */
interface ProfiledOptions {
  store?: string;
  source?: string;
  target?: string;
  aws?: boolean;
  config?: string;
  onSuccess?: string;
  onFailure?: string;
}

/**
 * Adds `--config` to every command that takes `--store`, and `--on-success`/`--on-failure` to the
 * commands that run a workflow; call once all commands are registered.
 */
export function addProfileOptions(program: Command): void {
  for (const command of program.commands) {
    if (!hasOption(command, '--store')) continue;
    // Declared required where each command is defined; the profile may give them instead, so
    // `applyProfile` does the check (and its message names all three ways).
    for (const setting of ['store', 'source'] as const) {
      const declared = command.options.find((o) => o.long === `--${setting}`);
      if (declared === undefined) continue;
      const fallback = `${ENV_VARS[setting]} or the config file's defaults.${setting}`;
      declared.description += declared.mandatory
        ? `; required unless ${fallback} gives it (@name: one of the config file's ${setting}s)`
        : `; else ${fallback} (@name: one of the config file's ${setting}s)`;
      declared.mandatory = false;
    }
    const target = command.options.find((o) => o.long === '--target');
    if (target !== undefined) target.description += " (@name: one of the config file's sources)";
    command.option(
      '--config <file>',
      'the config file with named stores and sources (default: PGFERRY_CONFIG, else ~/.config/pgferry/config.json)',
    );
    if ((HOOKED_COMMANDS as readonly string[]).includes(command.name())) {
      command
        .option(
          '--on-success <command>',
          'a shell command run after a successful run, with PGFERRY_OUTCOME, PGFERRY_BACKUP_ID, … in its environment',
        )
        .option(
          '--on-failure <command>',
          'a shell command run after a failed run, with PGFERRY_OUTCOME, PGFERRY_ERROR, … in its environment',
        );
    }
  }
}

/**
 * Fills in `command`'s store, source and target from the environment and the config file where
 * no flag gave them, and its hooks from the config file; refuses, in one line, a store or source
 * nothing gives. Run before each command's action (a `preAction` hook).
 */
export function applyProfile(command: Command, env: NodeJS.ProcessEnv = process.env): void {
  const opts = command.opts<ProfiledOptions>();
  const fromCli = (key: keyof ProfiledOptions) =>
    command.getOptionValueSource(key) === 'cli' ? (opts[key] as string | undefined) : undefined;
  const config = loadConfig(configFilePath(opts.config, env));
  for (const setting of ['store', 'source', 'target'] as const) {
    if (!hasOption(command, `--${setting}`)) continue;
    const resolved = resolveSetting(setting, fromCli(setting), env, config);
    if (resolved === undefined) {
      // The target is a required flag (commander says so); `list --aws` reads the stack's store.
      if (setting === 'target' || (setting === 'store' && opts.aws && command.name() === 'list')) continue;
      throw missingSetting(setting, env, config?.file ?? configFilePath(opts.config, env).file);
    }
    // A variable's value is checked here, so that its mistakes name the variable, not the flag.
    if (resolved.from === 'env' && setting !== 'target') checkFromEnv(setting, resolved.value);
    command.setOptionValueWithSource(
      setting,
      resolved.value,
      resolved.from === 'flag' ? 'cli' : resolved.from,
    );
  }
  if ((HOOKED_COMMANDS as readonly string[]).includes(command.name())) {
    const configured = config?.hooks[command.name() as HookedCommand];
    for (const hook of ['onSuccess', 'onFailure'] as const) {
      if (fromCli(hook) === undefined && configured?.[hook] !== undefined) {
        command.setOptionValueWithSource(hook, configured[hook], 'config');
      }
    }
  }
}

/** A value from `PGFERRY_STORE` or `PGFERRY_SOURCE`, checked as its flag would be. */
function checkFromEnv(setting: 'store' | 'source', value: string): void {
  const variable = ENV_VARS[setting];
  if (setting === 'source') {
    parseConnectionUrl(value, variable);
    return;
  }
  try {
    normaliseStoreUrl(value);
  } catch (err) {
    throw new PgferryError('InvalidInput', `${variable}: ${errorMessage(err)}`);
  }
}

/** A config store as a URL: folders relative to the config file's folder; `~/` is the home folder. */
function configStore(value: string, file: string, field: string, home: string): string {
  const folder = value.startsWith('~/') ? path.join(home, value.slice(2)) : value;
  try {
    return normaliseStoreUrl(folder, path.dirname(file));
  } catch (err) {
    throw bad(file, field, errorMessage(err));
  }
}

function bad(file: string, field: string, problem: string): PgferryError {
  return new PgferryError('InvalidInput', `${file}: ${field}: ${problem}`);
}

function expectedKeys(at: string[]): string {
  if (at.length === 0) return 'stores, sources, defaults, hooks';
  if (at[0] === 'defaults') return 'store, source';
  if (at[0] === 'hooks') return at.length === 1 ? HOOKED_COMMANDS.join(', ') : 'onSuccess, onFailure';
  return 'a known field';
}

function namesOf(entries: Record<string, string>): string {
  const names = Object.keys(entries);
  return names.length ? `it has ${names.join(', ')}` : 'it has none';
}

function hasOption(command: Command, long: string): boolean {
  return command.options.some((o) => o.long === long);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
