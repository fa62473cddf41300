/**
 * `planGlobals` (containers/pg-tools/src/globals.ts): which roles of `pg_dumpall --globals-only`
 * a target lacks, and which of those can log in but get no password.
 */
import { planGlobals } from '../../../../core/postgres/globals';

const dumpedWithoutPasswords = `
CREATE ROLE app_owner;
ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE app_readers;
ALTER ROLE app_readers WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "Tricky LOGIN PASSWORD";
ALTER ROLE "Tricky LOGIN PASSWORD" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
`;

test('login roles created from globals dumped without passwords are named', () => {
  const plan = planGlobals(dumpedWithoutPasswords, new Set(['postgres']));
  expect(plan.created).toEqual(['app_owner', 'app_readers', 'Tricky LOGIN PASSWORD']);
  expect(plan.skippedExisting).toEqual(['postgres']);
  expect(plan.createdWithoutPassword).toEqual(['app_owner']);
});

test('a login role created with its password hash is not', () => {
  const withPasswords = dumpedWithoutPasswords.replace(
    'LOGIN NOREPLICATION NOBYPASSRLS;',
    "LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2lnbg==';",
  );
  expect(planGlobals(withPasswords, new Set(['postgres'])).createdWithoutPassword).toEqual([]);
});
