/**
 * Profiles: where a command's store, source and target come from when no flag gives them —
 * flag > environment > config file — and the one line a bad config file gets.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  configFilePath,
  loadConfig,
  type PgferryConfig,
  parseConfig,
  resolveSetting,
} from '../../../cli/profile';

const HOME = '/home/ada';
const FILE = '/etc/pgferry/config.json';
const config: PgferryConfig = parseConfig(
  {
    stores: { default: './backups', s3: 's3://bucket/prefix', home: '~/pg-backups' },
    sources: { shop: 'postgresql://app@db:5432/shop', staging: 'postgres://app@staging/shop' },
    defaults: { store: 'default', source: 'shop' },
    hooks: { backup: { onFailure: 'notify-send failed' } },
  },
  FILE,
  HOME,
);

describe('the config file', () => {
  test('folders are relative to its own folder (or ~/), so cron and a shell in any folder agree', () => {
    expect(config.stores).toEqual({
      default: 'file:///etc/pgferry/backups',
      s3: 's3://bucket/prefix',
      home: 'file:///home/ada/pg-backups',
    });
  });

  test('is --config, else PGFERRY_CONFIG, else $XDG_CONFIG_HOME/pgferry/config.json, else ~/.config/…', () => {
    const env = { PGFERRY_CONFIG: '/srv/p.json', XDG_CONFIG_HOME: '/xdg' };
    expect(configFilePath('/a/flag.json', env, HOME)).toEqual({ file: '/a/flag.json', named: true });
    expect(configFilePath(undefined, env, HOME)).toEqual({ file: '/srv/p.json', named: true });
    expect(configFilePath(undefined, { XDG_CONFIG_HOME: '/xdg' }, HOME)).toEqual({
      file: '/xdg/pgferry/config.json',
      named: false,
    });
    expect(configFilePath(undefined, { XDG_CONFIG_HOME: '' }, HOME).file).toBe(
      '/home/ada/.config/pgferry/config.json',
    );
  });

  test('the default one may be absent; a named one may not', () => {
    const missing = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-profile-')), 'none.json');
    expect(loadConfig({ file: missing, named: false })).toBeUndefined();
    expect(() => loadConfig({ file: missing, named: true })).toThrow(
      `the config file ${missing} does not exist: check --config and PGFERRY_CONFIG`,
    );
  });

  test.each([
    [{ stores: { a: 1 } }, 'stores.a: expected a string'],
    [{ sourcs: {} }, 'sourcs: unknown field (expected stores, sources, defaults, hooks)'],
    [{ defaults: { stor: 'a' } }, 'defaults.stor: unknown field (expected store, source)'],
    [{ hooks: { bakup: {} } }, 'hooks.bakup: unknown field (expected backup, restore, verify, migrate)'],
    [
      { hooks: { backup: { onfailure: 'x' } } },
      'hooks.backup.onfailure: unknown field (expected onSuccess, onFailure)',
    ],
    [{ stores: { 'my store': '/b' } }, 'stores.my store: not a valid name: a name is letters, digits'],
    [{ stores: { a: 'ftp://x/y' } }, 'stores.a: unsupported store URL'],
    [{ sources: { a: 'mysql://db/x' } }, 'sources.a: the URL must start with postgres://'],
    [
      { sources: { a: 'postgres://app:hunter2@db/x' } },
      'sources.a: a password is not kept in the config file: remove it and put it in ~/.pgpass or PGPASSWORD',
    ],
    [{ defaults: { store: 'nas' } }, 'defaults.store: names no entry of stores (it has none)'],
    [[], '(top level): expected an object'],
  ])('%j is refused in one line naming the file and the field', (raw, message) => {
    let thrown: Error | undefined;
    try {
      parseConfig(raw, FILE, HOME);
    } catch (err) {
      thrown = err as Error;
    }
    expect(thrown?.message.startsWith(`${FILE}: ${message}`)).toBe(true);
    expect(thrown?.message).not.toContain('\n');
    expect(thrown?.message).not.toContain('hunter2');
  });

  test('a file that is not JSON names the file', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pgferry-profile-')), 'config.json');
    writeFileSync(file, '{"stores": {');
    expect(() => loadConfig({ file, named: true })).toThrow(new RegExp(`^${file}: not JSON: `));
  });
});

describe('precedence: flag > environment > config file', () => {
  const env = { PGFERRY_STORE: '/from/env', PGFERRY_SOURCE: 'postgres://env@db/envdb' };

  test.each([
    ['store', '/from/flag', env, { value: '/from/flag', from: 'flag' }],
    ['store', undefined, env, { value: '/from/env', from: 'env' }],
    ['store', undefined, {}, { value: 'file:///etc/pgferry/backups', from: 'config' }],
    ['store', undefined, { PGFERRY_STORE: '' }, { value: 'file:///etc/pgferry/backups', from: 'config' }],
    ['store', '@s3', env, { value: 's3://bucket/prefix', from: 'flag' }],
    ['store', undefined, { PGFERRY_STORE: '@s3' }, { value: 's3://bucket/prefix', from: 'env' }],
    ['source', 'postgres://flag@db/x', env, { value: 'postgres://flag@db/x', from: 'flag' }],
    ['source', undefined, env, { value: 'postgres://env@db/envdb', from: 'env' }],
    ['source', undefined, {}, { value: 'postgresql://app@db:5432/shop', from: 'config' }],
    ['source', '@staging', env, { value: 'postgres://app@staging/shop', from: 'flag' }],
    ['target', '@staging', env, { value: 'postgres://app@staging/shop', from: 'flag' }],
  ] as const)('%s given by flag %j with %j → %j', (setting, flag, environment, expected) => {
    expect(resolveSetting(setting, flag, environment, config)).toEqual(expected);
  });

  test('the target comes only from its flag: a destination to write into is never implied', () => {
    expect(
      resolveSetting('target', undefined, { PGFERRY_TARGET: 'postgres://x@y/z' }, config),
    ).toBeUndefined();
  });

  test('nothing given is undefined; an unknown @name says what the file has', () => {
    expect(resolveSetting('store', undefined, {}, undefined)).toBeUndefined();
    expect(() => resolveSetting('store', '@nas', {}, config)).toThrow(
      '--store @nas: /etc/pgferry/config.json has no stores.nas (it has default, s3, home)',
    );
    expect(() => resolveSetting('source', undefined, { PGFERRY_SOURCE: '@billing' }, config)).toThrow(
      'PGFERRY_SOURCE=@billing: /etc/pgferry/config.json has no sources.billing (it has shop, staging)',
    );
    expect(() => resolveSetting('store', '@s3', { XDG_CONFIG_HOME: '/xdg' }, undefined)).toThrow(
      '--store @s3 names an entry of a config file, and there is none: create /xdg/pgferry/config.json, or pass --config <file>',
    );
  });
});
