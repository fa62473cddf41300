import { BackupManifestSchema } from '../../../../core/contracts';
import {
  createDatabaseSql,
  describeArchive,
  downgradeRisks,
  restoreMajor,
} from '../../../../core/postgres/requirements';
import { syntheticManifest } from '../../../support/backups';

describe('createDatabaseSql', () => {
  const icu = { collate: 'C', ctype: 'C', provider: 'icu', icuLocale: "de-DE-u-x'y" } as const;

  test('names the provider from 15 on, and quotes every value', () => {
    expect(createDatabaseSql('shop "eu"', 17, 'UTF8', icu)).toBe(
      `CREATE DATABASE "shop ""eu""" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' ` +
        `LOCALE_PROVIDER icu ICU_LOCALE 'de-DE-u-x''y'`,
    );
  });

  test('a libc locale on 14, which has no LOCALE_PROVIDER', () => {
    expect(createDatabaseSql('d', 14, 'LATIN1', { collate: 'C', ctype: 'C', provider: 'libc' })).toBe(
      `CREATE DATABASE "d" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`,
    );
  });

  test('ICU rules and the builtin locale', () => {
    expect(createDatabaseSql('d', 16, 'UTF8', { ...icu, icuLocale: 'und', icuRules: '&a < b' })).toMatch(
      / ICU_LOCALE 'und' ICU_RULES '&a < b'$/,
    );
    expect(
      createDatabaseSql('d', 17, 'UTF8', {
        collate: 'C',
        ctype: 'C',
        provider: 'builtin',
        builtinLocale: 'C.UTF-8',
      }),
    ).toMatch(/ LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C\.UTF-8'$/);
  });

  test('a manifest without a locale (written before pgferry recorded them): the encoding only', () => {
    expect(createDatabaseSql('d', 17, 'UTF8', undefined)).toBe(
      `CREATE DATABASE "d" TEMPLATE template0 ENCODING 'UTF8'`,
    );
  });
});

describe('the archive a backup holds', () => {
  const migration = {
    server: { version: '15.18', major: 15 },
    tool: { pgDumpVersion: '17.12', pgDumpMajor: 17 },
  };

  test('needs a server of the newer of its source and its pg_dump', () => {
    expect(restoreMajor(migration)).toBe(17);
    expect(restoreMajor({ ...migration, server: { version: '18.1', major: 18 } })).toBe(18);
  });

  test('is described by its pg_dump and its source apart', () => {
    expect(describeArchive(migration)).toBe('pg_dump 17.12 (of a PostgreSQL 15.18 source)');
  });

  test('restored into an older server, names what will fail', () => {
    expect(downgradeRisks(migration, 15)).toEqual([
      expect.stringMatching(
        /^pg_restore 17 starts with SET transaction_timeout, which PostgreSQL 15 does not know/,
      ),
      'SQL that pg_dump 17 writes for features PostgreSQL 15 lacks will fail',
    ]);
    expect(downgradeRisks({ ...migration, tool: { pgDumpVersion: '15.18', pgDumpMajor: 15 } }, 14)).toEqual([
      'SQL that pg_dump 15 writes for features PostgreSQL 14 lacks will fail',
      'objects using what PostgreSQL 15 added after 14 will fail',
    ]);
  });
});

test('a manifest written before locales were recorded still parses', () => {
  const old = { ...syntheticManifest('d', new Date(), Buffer.from('x')) };
  const parsed = BackupManifestSchema.parse({
    ...old,
    requires: { encoding: 'LATIN1', extensions: [], roles: ['postgres'] },
  });
  expect(parsed.requires?.locale).toBeUndefined();
});
