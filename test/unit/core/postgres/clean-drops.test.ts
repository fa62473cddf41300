import { dropsOf } from '../../../../core/postgres/clean-drops';
import { dataJobShares } from '../../../../core/postgres/tools';

// pg_restore 15.18's script of a list (a function, two tables with a foreign key, a view), with
// and without --clean --if-exists: the header, then the drops, then the same as without.
const header = (key: string) => [
  '--',
  '-- PostgreSQL database dump',
  '--',
  '',
  `\\restrict ${key}`,
  '',
  'SET statement_timeout = 0;',
  'SET lock_timeout = 0;',
  "SELECT pg_catalog.set_config('search_path', '', false);",
  '',
];
const drops = [
  'ALTER TABLE IF EXISTS ONLY public.b DROP CONSTRAINT IF EXISTS b_a_id_fkey;',
  'DROP VIEW IF EXISTS public.vb;',
  'DROP TABLE IF EXISTS public.b;',
  'DROP TABLE IF EXISTS public.a;',
  'DROP FUNCTION IF EXISTS public.f();',
];
const creates = (key: string) => [
  '--',
  '-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres',
  '--',
  '',
  'CREATE FUNCTION public.f() RETURNS trigger',
  '    LANGUAGE plpgsql',
  '    AS $$begin return new; end$$;',
  '',
  `\\unrestrict ${key}`,
  '',
];
const script = (key: string, withDrops: boolean) =>
  [...header(key), ...(withDrops ? drops : []), ...creates(key)].join('\n');

describe('dropsOf', () => {
  it("keeps pg_restore's header and drops, in its order, and nothing it creates", () => {
    const out = dropsOf(script('AAA', true), script('BBB', false)) as string;
    expect(out.split('\n')).toEqual([
      ...header('AAA').filter((l) => l !== 'SET lock_timeout = 0;'),
      ...drops,
      '',
    ]);
    expect(out).not.toMatch(/CREATE|unrestrict/);
  });

  it('is undefined when there is nothing to drop', () => {
    expect(dropsOf(script('A', false), script('B', false))).toBeUndefined();
  });

  it('refuses scripts of another shape', () => {
    expect(() => dropsOf(script('A', true), `${script('B', false)}\nSELECT 1;`)).toThrow(/unexpected shape/);
  });
});

describe('dataJobShares', () => {
  it("shares the jobs by the archives' bytes, at least one each", () => {
    // The wide shape: its events table alone in the main archive gets two (and is split).
    expect(dataJobShares([200, 85], 2)).toEqual([2, 1]);
    expect(dataJobShares([500, 500], 2)).toEqual([1, 1]);
    expect(dataJobShares([100, 100, 100, 100], 4)).toEqual([1, 1, 1, 1]);
    expect(dataJobShares([800, 100, 100], 8)).toEqual([7, 1, 1]);
    expect(dataJobShares([0, 0], 4)).toEqual([1, 1]);
  });
});
