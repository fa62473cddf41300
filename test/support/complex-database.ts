/**
 * A deliberately complex database, built deterministically (no random(), no now() in the data) on
 * PostgreSQL 14, 15 and 17 alike, for the backup → restore fidelity tests (test/e2e/fidelity.test.ts).
 *
 * It has schemas (one unicode-named, one for contrib extensions); enum (with values added later, out
 * of order), composite, range and domain types; range-, list- (sub-) and hash-partitioned tables with
 * default partitions; an inheritance tree; an unlogged table; identity, generated and TOASTed columns
 * (a >1 MB text, a ~400 kB bytea with external storage); sequences with unusual increments, a huge
 * value, a cycle, a cache, never-called ones; views (security barrier, check option) and populated and
 * unpopulated materialized views; SQL, plpgsql, SQL-standard-body functions, an aggregate, procedures;
 * row, statement (transition table), constraint, disabled and "always" triggers; a rule; row-level
 * security with permissive and restrictive policies; comments on nearly every kind of object;
 * ownership and grants (table, column, schema, type, function, sequence, large object, default
 * privileges, a grantor other than the owner) for several roles; hstore, pg_trgm and citext with
 * columns and indexes; large objects (empty, small, multi-page, one at a chosen oid); identifiers that
 * need quoting (unicode, embedded quotes, a newline, `x"; DROP TABLE y; --`); unicode data; NULL next
 * to empty strings, empty arrays, empty bytea and JSON null; one deliberately empty table.
 */
import { quoteIdent, quoteLiteral, type TestPostgres, withClient } from './env';

/** The oid given to one large object explicitly (the others get server-assigned oids). */
export const CHOSEN_LARGE_OBJECT_OID = 3_000_000_001;

/**
 * The objects whose emptiness is intended: every other table of the complex database has rows (so a
 * fidelity test can check that its comparison is not vacuous).
 */
export const EMPTY_TABLES: readonly string[] = ['app.empty_table'];

/**
 * Builds the complex database in `name` (which must exist and be empty) on `pg`.
 *
 * `roles` are three existing role names, used as: [0] the owner of the `app` schema and of several
 * objects, [1] a reader, [2] a writer (owner of the unicode schema; grants on to the reader). Any
 * names work, including ones that need quoting.
 */
export async function createComplexDatabase(pg: TestPostgres, name: string, roles: string[]): Promise<void> {
  if (roles.length < 3) throw new Error('createComplexDatabase needs three role names');
  const [owner, reader, writer] = roles.slice(0, 3).map(quoteIdent);
  const [readerName, writerName] = [roles[1], roles[2]].map(quoteLiteral);

  // Each step runs as its own statement batch (an implicit transaction), in this order: enum values
  // added by ALTER TYPE … ADD VALUE can only be used once committed.
  const steps: string[] = [
    // --- schemas and extensions -------------------------------------------------------------------
    `CREATE SCHEMA ext;
     COMMENT ON SCHEMA ext IS 'contrib extensions live here';
     CREATE EXTENSION hstore WITH SCHEMA ext;
     CREATE EXTENSION pg_trgm WITH SCHEMA ext;
     CREATE EXTENSION citext WITH SCHEMA ext;
     COMMENT ON EXTENSION citext IS 'case-insensitive text — ünïcødé comment';
     CREATE SCHEMA app AUTHORIZATION ${owner};
     COMMENT ON SCHEMA app IS 'the application''s schema: "quotes", ünïcødé, 日本語';
     CREATE SCHEMA "Ünïcødé schema";
     ALTER SCHEMA "Ünïcødé schema" OWNER TO ${writer};
     COMMENT ON SCHEMA "Ünïcødé schema" IS 'schéma';`,

    // --- types ------------------------------------------------------------------------------------
    `CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
     ALTER TYPE app.mood OWNER TO ${owner};
     COMMENT ON TYPE app.mood IS 'how a customer feels';`,
    `ALTER TYPE app.mood ADD VALUE 'ecstatic' AFTER 'happy'`,
    `ALTER TYPE app.mood ADD VALUE 'méh' BEFORE 'ok'`,
    `CREATE TYPE app.address AS (street text, city ext.citext, zip varchar(10), tags text[]);
     COMMENT ON TYPE app.address IS 'a postal address';
     COMMENT ON COLUMN app.address.zip IS 'postal code, kept as text';
     CREATE DOMAIN app.positive_int AS integer NOT NULL DEFAULT 1 CONSTRAINT positive CHECK (VALUE > 0);
     COMMENT ON DOMAIN app.positive_int IS 'a count that is at least one';
     COMMENT ON CONSTRAINT positive ON DOMAIN app.positive_int IS 'zero is not positive';
     CREATE DOMAIN app.email AS ext.citext CONSTRAINT has_at CHECK (VALUE ~ '^[^@]+@[^@]+$');
     ALTER DOMAIN app.email OWNER TO ${writer};
     CREATE TYPE app.float_range AS RANGE (subtype = float8);
     REVOKE USAGE ON TYPE app.address FROM PUBLIC;
     GRANT USAGE ON TYPE app.address TO ${reader};
     GRANT USAGE ON TYPE app.mood TO ${writer};`,

    // --- sequences --------------------------------------------------------------------------------
    `CREATE SEQUENCE app.countdown AS integer INCREMENT BY -3 MINVALUE -1000000 MAXVALUE 1000 START WITH 1000;
     ALTER SEQUENCE app.countdown OWNER TO ${owner};
     SELECT nextval('app.countdown') FROM generate_series(1, 5);
     CREATE SEQUENCE app.huge AS bigint INCREMENT BY 1000;
     SELECT setval('app.huge', 9000000000);
     CREATE SEQUENCE app.cycler MINVALUE 1 MAXVALUE 5 CYCLE;
     SELECT nextval('app.cycler') FROM generate_series(1, 7);
     CREATE SEQUENCE app.untouched START WITH 42;
     CREATE SEQUENCE app.rewound START WITH 10;
     SELECT setval('app.rewound', 77, false);
     CREATE SEQUENCE "Ünïcødé schema"."séquence ""q""" INCREMENT BY 5 MINVALUE 0 START WITH 0;
     SELECT nextval('"Ünïcødé schema"."séquence ""q"""') FROM generate_series(1, 3);
     CREATE SEQUENCE app.order_numbers AS integer START WITH 5000 INCREMENT BY 7 CACHE 20;
     COMMENT ON SEQUENCE app.countdown IS 'counts down by three';
     GRANT USAGE, SELECT ON SEQUENCE app.countdown TO ${writer};
     GRANT SELECT ON SEQUENCE app.huge TO ${reader};`,

    // --- functions, procedures, aggregate ---------------------------------------------------------
    `CREATE FUNCTION app.add(a integer, b integer DEFAULT 1, OUT total integer, OUT doubled integer)
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT a + b, 2 * (a + b) $$;
     CREATE FUNCTION app.add(a numeric, b numeric) RETURNS numeric
       LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT a + b $$;
     CREATE FUNCTION app.clamp(x numeric) RETURNS numeric
       LANGUAGE sql IMMUTABLE STRICT RETURN greatest(0, least(100, x));
     CREATE FUNCTION app.secret() RETURNS text
       LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp COST 5 AS $$
     BEGIN
       -- a comment inside a function body is part of its definition
       RETURN 'sëcret';
     END
     $$;
     REVOKE ALL ON FUNCTION app.secret() FROM PUBLIC;
     GRANT EXECUTE ON FUNCTION app.secret() TO ${reader};
     COMMENT ON FUNCTION app.secret() IS 'only the reader may call this';
     CREATE FUNCTION "Ünïcødé schema"."fünc ""q"""(n integer) RETURNS text
       LANGUAGE sql IMMUTABLE AS $$ SELECT repeat('ü', n) $$;
     ALTER FUNCTION "Ünïcødé schema"."fünc ""q"""(integer) OWNER TO ${writer};
     CREATE AGGREGATE app.concat_all(text) (SFUNC = textcat, STYPE = text, INITCOND = '');
     COMMENT ON AGGREGATE app.concat_all(text) IS 'concatenates';`,

    // --- tables -----------------------------------------------------------------------------------
    `CREATE TABLE app.customers (
       id bigint GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 10) PRIMARY KEY,
       email app.email UNIQUE,
       name text NOT NULL CONSTRAINT name_not_blank CHECK (length(name) > 0),
       nickname text,
       mood app.mood,
       address app.address,
       attrs ext.hstore,
       tags text[],
       score numeric(12, 4),
       ratio double precision,
       born date,
       seen_at timestamptz,
       wake_at time,
       span interval,
       uid uuid,
       ip inet,
       doc jsonb,
       raw bytea,
       readings app.float_range,
       visits app.positive_int,
       name_lower text GENERATED ALWAYS AS (lower(name)) STORED
     );
     COMMENT ON TABLE app.customers IS 'customers; "quoted" and ünïcødé';
     COMMENT ON COLUMN app.customers.nickname IS 'NULL and '''' are different things';
     COMMENT ON CONSTRAINT name_not_blank ON app.customers IS 'names are never empty';
     CREATE STATISTICS app.customer_stats (ndistinct, dependencies) ON mood, born FROM app.customers;
     ALTER TABLE app.customers ALTER COLUMN doc SET STATISTICS 500;

     CREATE TABLE app.orders (
       id integer DEFAULT nextval('app.order_numbers') PRIMARY KEY,
       customer bigint NOT NULL,
       status app.mood NOT NULL DEFAULT 'ok',
       total numeric(10, 2) CONSTRAINT total_not_negative CHECK (total >= 0),
       lines jsonb NOT NULL DEFAULT '[]',
       note text COLLATE "C",
       placed_on date,
       zone circle,
       CONSTRAINT orders_customer_fkey FOREIGN KEY (customer) REFERENCES app.customers (id)
         ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
       CONSTRAINT zones_apart EXCLUDE USING gist (zone WITH &&)
     );
     ALTER SEQUENCE app.order_numbers OWNED BY app.orders.id;

     CREATE TABLE app.audit_log (
       id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
       tbl text NOT NULL,
       op text NOT NULL,
       n integer NOT NULL
     );
     CREATE RULE "keep the audit log" AS ON DELETE TO app.audit_log DO INSTEAD NOTHING;
     COMMENT ON RULE "keep the audit log" ON app.audit_log IS 'deletes do nothing';

     CREATE TABLE app.documents (
       id integer PRIMARY KEY,
       owner_role name NOT NULL,
       title text NOT NULL,
       body text,
       classified boolean NOT NULL DEFAULT false
     );
     ALTER TABLE app.documents OWNER TO ${owner};

     CREATE TABLE app.blobs (id integer PRIMARY KEY, label text NOT NULL, body text, payload bytea)
       WITH (fillfactor = 90);
     ALTER TABLE app.blobs ALTER COLUMN payload SET STORAGE EXTERNAL;
     ALTER TABLE app.blobs REPLICA IDENTITY FULL;
     ALTER TABLE app.blobs CLUSTER ON blobs_pkey;
     ALTER TABLE app.blobs OWNER TO ${owner};

     CREATE TABLE app."x""; DROP TABLE y; --" (
       "Select" integer PRIMARY KEY,
       "white space" text,
       "x""y" text,
       "new${'\n'}line" text,
       "a'b" text
     );
     COMMENT ON TABLE app."x""; DROP TABLE y; --" IS 'x''; DROP TABLE y; --';

     CREATE TABLE "Ünïcødé schema"."Ünïcødé täble" (
       "Ключ" integer PRIMARY KEY,
       "värde" text,
       "ℕ" numeric,
       "emoji 🐘" text,
       "MixedCase" varchar(20)
     );
     ALTER TABLE "Ünïcødé schema"."Ünïcødé täble" OWNER TO ${writer};
     COMMENT ON COLUMN "Ünïcødé schema"."Ünïcødé täble"."Ключ" IS 'ключ — key';

     CREATE TABLE app.events (id integer NOT NULL, kind text NOT NULL, payload jsonb);
     CREATE TABLE app.click_events (url text NOT NULL) INHERITS (app.events);

     CREATE UNLOGGED TABLE app.cache (key text PRIMARY KEY, value bytea)
       WITH (fillfactor = 70, autovacuum_enabled = false);

     CREATE TABLE app.empty_table (id integer, note text);
     COMMENT ON TABLE app.empty_table IS 'empty on purpose';`,

    // --- partitioned tables -----------------------------------------------------------------------
    `CREATE TABLE app.measurements (
       id bigint NOT NULL,
       logged date NOT NULL,
       region text NOT NULL,
       reading numeric,
       mood app.mood,
       PRIMARY KEY (id, logged, region)
     ) PARTITION BY RANGE (logged);
     CREATE TABLE app.measurements_2024 PARTITION OF app.measurements
       FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
     CREATE TABLE app.measurements_2025 PARTITION OF app.measurements
       FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (region);
     CREATE TABLE app.measurements_2025_europe PARTITION OF app.measurements_2025 FOR VALUES IN ('eu', 'uk');
     CREATE TABLE app.measurements_2025_other PARTITION OF app.measurements_2025 DEFAULT;
     CREATE TABLE app.measurements_default PARTITION OF app.measurements DEFAULT;
     CREATE INDEX measurements_reading_idx ON app.measurements (reading) WHERE reading IS NOT NULL;
     COMMENT ON TABLE app.measurements IS 'partitioned by range, then by list';

     CREATE TABLE app.shards (k integer PRIMARY KEY, v text) PARTITION BY HASH (k);
     CREATE TABLE app.shards_0 PARTITION OF app.shards FOR VALUES WITH (MODULUS 3, REMAINDER 0);
     CREATE TABLE app.shards_1 PARTITION OF app.shards FOR VALUES WITH (MODULUS 3, REMAINDER 1);
     CREATE TABLE app.shards_2 PARTITION OF app.shards FOR VALUES WITH (MODULUS 3, REMAINDER 2);

     CREATE TABLE app.measurement_notes (
       id integer PRIMARY KEY,
       measurement_id bigint NOT NULL,
       logged date NOT NULL,
       region text NOT NULL,
       note text,
       FOREIGN KEY (measurement_id, logged, region) REFERENCES app.measurements ON DELETE CASCADE
     );`,

    // --- triggers (created before the data, so the audit log fills deterministically) -------------
    `CREATE FUNCTION app.measurements_check() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.reading < 0 THEN
         RAISE EXCEPTION 'negative reading %', NEW.reading;
       END IF;
       RETURN NEW;
     END
     $$;
     CREATE TRIGGER "check reading" BEFORE INSERT OR UPDATE OF reading ON app.measurements
       FOR EACH ROW EXECUTE FUNCTION app.measurements_check();
     COMMENT ON TRIGGER "check reading" ON app.measurements IS 'on the partitioned table';

     CREATE FUNCTION app.audit_changes() RETURNS trigger
       LANGUAGE plpgsql SECURITY DEFINER SET search_path = app, pg_temp AS $$
     BEGIN
       INSERT INTO app.audit_log (tbl, op, n) SELECT TG_TABLE_NAME, TG_OP, count(*) FROM new_rows;
       RETURN NULL;
     END
     $$;
     CREATE TRIGGER customers_audit AFTER INSERT ON app.customers
       REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.audit_changes();
     CREATE TRIGGER orders_audit AFTER INSERT ON app.orders
       REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.audit_changes();
     ALTER TABLE app.orders ENABLE ALWAYS TRIGGER orders_audit;

     CREATE FUNCTION app.trim_nickname() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       NEW.nickname := btrim(NEW.nickname);
       RETURN NEW;
     END
     $$;
     CREATE TRIGGER "trim nickname" BEFORE UPDATE OF nickname ON app.customers
       FOR EACH ROW WHEN (OLD.nickname IS DISTINCT FROM NEW.nickname)
       EXECUTE FUNCTION app.trim_nickname();

     CREATE FUNCTION app.check_order() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.total > 1000000 THEN
         RAISE EXCEPTION 'order % is too large', NEW.id;
       END IF;
       RETURN NULL;
     END
     $$;
     CREATE CONSTRAINT TRIGGER "order total sane" AFTER INSERT OR UPDATE ON app.orders
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.check_order();`,

    // --- data -------------------------------------------------------------------------------------
    `INSERT INTO app.customers (email, name, nickname, mood, address, attrs, tags, score, ratio, born,
                                seen_at, wake_at, span, uid, ip, doc, raw, readings, visits)
     SELECT
       CASE WHEN g % 11 = 0 THEN NULL ELSE 'User' || g || '@Example.com' END,
       CASE g % 5
         WHEN 0 THEN 'Zoë ' || g
         WHEN 1 THEN '日本語 ' || g
         WHEN 2 THEN 'emoji 🐘 ' || g
         WHEN 3 THEN 'O''Brien "quoted" ' || g
         ELSE 'tab' || chr(9) || 'new' || chr(10) || 'line ' || g || ' back' || chr(92) || 'slash'
       END,
       CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'nick ' || g END,
       (ARRAY['sad', 'méh', 'ok', 'happy', 'ecstatic', NULL]::app.mood[])[1 + g % 6],
       CASE WHEN g % 7 = 0 THEN NULL
            ELSE ROW('Street ' || g, 'City' || (g % 10), lpad((g * 37 % 100000)::text, 5, '0'),
                     CASE WHEN g % 2 = 0 THEN ARRAY['a', NULL, ''] ELSE '{}'::text[] END)::app.address
       END,
       ext.hstore(ARRAY['k' || g % 4, 'empty', 'null'], ARRAY[g::text, '', NULL]),
       CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '{}'::text[] ELSE ARRAY['x' || g, NULL, ''] END,
       round(g * 3.14159::numeric, 4),
       g / 7.0::float8,
       date '2000-01-01' + g,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes 13.123456 seconds',
       time '00:00' + g * interval '17 seconds',
       make_interval(days => g % 40, secs => g / 3.0),
       md5(g::text)::uuid,
       ('10.' || (g % 256) || '.' || (g / 256 % 256) || '.1')::inet,
       CASE WHEN g % 9 = 0 THEN 'null'::jsonb
            ELSE jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'two', NULL), 'null', NULL, 'empty', '')
       END,
       CASE g % 5 WHEN 0 THEN NULL WHEN 1 THEN ''::bytea ELSE decode(md5(g::text), 'hex') END,
       CASE WHEN g % 8 = 0 THEN 'empty'::app.float_range ELSE app.float_range(g / 4.0, g / 2.0, '[)') END,
       1 + g % 100
     FROM generate_series(1, 2000) g;

     INSERT INTO app.orders (customer, status, total, lines, note, placed_on, zone)
     SELECT 100 + 10 * (g % 2000),
            (ARRAY['sad', 'ok', 'happy', 'ecstatic']::app.mood[])[1 + g % 4],
            round(g * 1.37, 2),
            jsonb_build_array(jsonb_build_object('sku', 'SKU-' || g, 'qty', g % 5)),
            CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'ördër ' || g END,
            date '2024-01-01' + g % 500,
            CASE WHEN g % 10 = 0 THEN NULL ELSE circle(point(g * 10, 0), 2) END
     FROM generate_series(1, 4000) g;

     UPDATE app.customers SET nickname = '  padded nick  ' WHERE id = 110;`,

    `CREATE PROCEDURE app.bump_visits(customer_id bigint, INOUT bumped integer DEFAULT 0)
       LANGUAGE plpgsql AS $$
     BEGIN
       UPDATE app.customers SET visits = visits + 1 WHERE id = customer_id;
       GET DIAGNOSTICS bumped = ROW_COUNT;
     END
     $$;
     COMMENT ON PROCEDURE app.bump_visits(bigint, integer) IS 'adds one visit';
     GRANT EXECUTE ON PROCEDURE app.bump_visits(bigint, integer) TO ${writer};
     CREATE PROCEDURE app.reset_visits() LANGUAGE sql
     BEGIN ATOMIC
       UPDATE app.customers SET visits = 1;
     END;
     CALL app.bump_visits(120, 0);
     CALL app.bump_visits(120, 0);
     ALTER TABLE app.customers DISABLE TRIGGER "trim nickname";`,

    `INSERT INTO app.documents
     SELECT g,
            CASE WHEN g % 2 = 0 THEN ${readerName} ELSE ${writerName} END,
            'Döc ' || g,
            CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE repeat('body ', g) END,
            g % 5 = 0
     FROM generate_series(1, 300) g;

     INSERT INTO app.blobs VALUES
       (1, 'big text', (SELECT string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 40000) i),
                       (SELECT string_agg(decode(md5(i::text), 'hex'), ''::bytea ORDER BY i)
                        FROM generate_series(1, 25000) i)),
       (2, 'empty', '', ''::bytea),
       (3, 'null', NULL, NULL),
       (4, 'unicode, compressible', repeat('ünïcødé 🐘 日本語 ', 60000), NULL);

     INSERT INTO app."x""; DROP TABLE y; --" VALUES
       (1, 'a', 'b', 'c', 'd'),
       (2, '', NULL, '', NULL),
       (3, NULL, '', NULL, ''),
       (4, chr(92), '''', '"', '--'),
       (5, 'x''; DROP TABLE y; --', '); DROP TABLE app.customers; --', chr(10), chr(13) || chr(10));

     INSERT INTO "Ünïcødé schema"."Ünïcødé täble"
     SELECT g,
            CASE g % 4
              WHEN 0 THEN NULL
              WHEN 1 THEN ''
              WHEN 2 THEN 'Ünïcødé ' || g || ' ✓ 日本語 🐘 ' || chr(1488) || chr(1489)
              ELSE 'multi' || chr(10) || 'line' || chr(9) || 'tab ' || g
            END,
            g / 3.0,
            repeat('🐘', g % 5),
            CASE WHEN g % 2 = 0 THEN 'Mixed' END
     FROM generate_series(1, 500) g;

     INSERT INTO app.events SELECT g, 'generic', jsonb_build_object('n', g) FROM generate_series(1, 200) g;
     INSERT INTO app.click_events
       SELECT g, 'click', NULL, 'https://example.com/ü/' || g FROM generate_series(201, 400) g;

     INSERT INTO app.cache
       SELECT 'key ' || g, CASE WHEN g % 2 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END
       FROM generate_series(1, 100) g;

     INSERT INTO app.measurements
     SELECT g,
            date '2023-06-01' + (g % 1200),
            (ARRAY['eu', 'us', 'uk', 'jp'])[1 + g % 4],
            CASE WHEN g % 9 = 0 THEN NULL ELSE g * 0.25 END,
            (ARRAY['sad', 'ok', 'happy']::app.mood[])[1 + g % 3]
     FROM generate_series(1, 5000) g;

     INSERT INTO app.shards SELECT g, 'v' || g FROM generate_series(1, 3000) g;

     INSERT INTO app.measurement_notes
     SELECT g, g, date '2023-06-01' + (g % 1200), (ARRAY['eu', 'us', 'uk', 'jp'])[1 + g % 4],
            CASE WHEN g % 2 = 0 THEN 'nöte ' || g END
     FROM generate_series(1, 1000, 3) g;`,

    // --- views and materialized views -------------------------------------------------------------
    `CREATE VIEW app.customer_summary WITH (security_barrier) AS
       SELECT c.id, c.name, count(o.id) AS orders, coalesce(sum(o.total), 0) AS spent
       FROM app.customers c LEFT JOIN app.orders o ON o.customer = c.id
       GROUP BY c.id;
     COMMENT ON VIEW app.customer_summary IS 'one row per customer';
     CREATE VIEW app.happy_customers AS
       SELECT * FROM app.customers WHERE mood = 'happy' WITH CASCADED CHECK OPTION;
     CREATE VIEW "Ünïcødé schema"."vüe" AS
       SELECT "Ключ", upper("värde") AS "VÄRDE", "Ünïcødé schema"."fünc ""q"""(2) AS "fünc"
       FROM "Ünïcødé schema"."Ünïcødé täble";
     ALTER VIEW "Ünïcødé schema"."vüe" OWNER TO ${writer};

     CREATE MATERIALIZED VIEW app.mood_counts AS
       SELECT mood, count(*) AS n, sum(score) AS total, app.concat_all(left(name, 1) ORDER BY id) AS initials
       FROM app.customers GROUP BY mood
       WITH DATA;
     CREATE UNIQUE INDEX mood_counts_mood ON app.mood_counts (mood);
     ALTER MATERIALIZED VIEW app.mood_counts OWNER TO ${owner};
     COMMENT ON MATERIALIZED VIEW app.mood_counts IS 'populated';
     CREATE MATERIALIZED VIEW app.unpopulated AS SELECT id, total FROM app.orders WITH NO DATA;
     COMMENT ON MATERIALIZED VIEW app.unpopulated IS 'never refreshed';`,

    // --- indexes ----------------------------------------------------------------------------------
    `CREATE INDEX customers_name_trgm ON app.customers USING gin (name ext.gin_trgm_ops);
     CREATE INDEX customers_attrs ON app.customers USING gin (attrs);
     CREATE INDEX customers_email_lower ON app.customers (lower(email::text)) INCLUDE (name)
       WHERE email IS NOT NULL;
     COMMENT ON INDEX app.customers_email_lower IS 'partial, expression, covering';
     CREATE INDEX "índice ünïcødé" ON "Ünïcødé schema"."Ünïcødé täble"
       USING gist ("värde" ext.gist_trgm_ops (siglen = 32));
     CREATE INDEX orders_placed_brin ON app.orders USING brin (placed_on) WITH (pages_per_range = 16);
     CREATE INDEX orders_note_hash ON app.orders USING hash (note);
     CREATE INDEX orders_customer ON app.orders (customer DESC NULLS LAST, placed_on);`,

    // --- row-level security -----------------------------------------------------------------------
    `ALTER TABLE app.documents ENABLE ROW LEVEL SECURITY;
     ALTER TABLE app.documents FORCE ROW LEVEL SECURITY;
     CREATE POLICY "own documents" ON app.documents FOR ALL TO ${reader}, ${writer}
       USING (owner_role = current_user) WITH CHECK (owner_role = current_user);
     COMMENT ON POLICY "own documents" ON app.documents IS 'each role sees its own';
     CREATE POLICY "no classified ""docs""" ON app.documents AS RESTRICTIVE FOR SELECT
       USING (NOT classified);
     CREATE POLICY insert_any ON app.documents FOR INSERT TO ${writer} WITH CHECK (true);
     ALTER TABLE app.measurements_2024 ENABLE ROW LEVEL SECURITY;`,

    // --- privileges -------------------------------------------------------------------------------
    `GRANT USAGE ON SCHEMA app TO ${reader}, ${writer};
     GRANT USAGE ON SCHEMA ext TO PUBLIC;
     GRANT USAGE ON SCHEMA "Ünïcødé schema" TO ${reader} WITH GRANT OPTION;
     GRANT SELECT ON ALL TABLES IN SCHEMA app TO ${reader};
     GRANT SELECT ON app.customers TO ${owner}; -- so that its materialized view can be refreshed
     GRANT INSERT, UPDATE (nickname, mood) ON app.customers TO ${writer};
     GRANT SELECT (id, name) ON app.customers TO PUBLIC;
     GRANT ALL ON app.orders TO ${writer};
     REVOKE TRIGGER, TRUNCATE ON app.orders FROM ${writer};
     GRANT SELECT ON "Ünïcødé schema"."vüe" TO PUBLIC;
     ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA app GRANT SELECT ON TABLES TO ${reader};
     ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
     ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT USAGE ON SEQUENCES TO ${writer};
     SET ROLE ${owner};
     GRANT SELECT, UPDATE ON app.documents TO ${writer} WITH GRANT OPTION;
     SET ROLE ${writer};
     GRANT SELECT ON app.documents TO ${reader};
     RESET ROLE;`,
  ];

  await withClient(pg, name, async (c) => {
    for (const sql of steps) {
      try {
        await c.query(sql);
      } catch (err) {
        throw new Error(`building the complex database failed: ${(err as Error).message}\nin:\n${sql}`);
      }
    }
    await createLargeObjects(c, owner, reader);
  });
}

/** Four large objects: small unicode, empty, multi-page (~320 kB), and one at a chosen oid. */
async function createLargeObjects(c: import('pg').Client, owner: string, reader: string): Promise<void> {
  const created = await c.query<{ oid: string }>(`
    SELECT lo_from_bytea(0, convert_to('hello ünïcødé 🐘', 'UTF8'))::text AS oid
    UNION ALL
    SELECT lo_from_bytea(0, ''::bytea)::text
    UNION ALL
    SELECT lo_from_bytea(0, (SELECT string_agg(decode(md5(i::text), 'hex'), ''::bytea ORDER BY i)
                             FROM generate_series(1, 20000) i))::text`);
  const [small, , multiPage] = created.rows.map((r) => r.oid);
  await c.query(`
    SELECT lo_from_bytea(${CHOSEN_LARGE_OBJECT_OID}, convert_to(repeat('chosen oid ', 1000), 'UTF8'));
    ALTER LARGE OBJECT ${small} OWNER TO ${owner};
    GRANT SELECT ON LARGE OBJECT ${small} TO ${reader};
    COMMENT ON LARGE OBJECT ${small} IS 'a small large object — ünïcødé';
    GRANT SELECT, UPDATE ON LARGE OBJECT ${multiPage} TO PUBLIC;
    COMMENT ON LARGE OBJECT ${CHOSEN_LARGE_OBJECT_OID} IS 'at a chosen oid';`);
}
