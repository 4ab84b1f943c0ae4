-- Least privilege for the application role. Applied by the owner after the
-- migrations: `intake migrate --app-role NAME` (eventstore/roles.py; the
-- embedded default does it at every start), or by hand:
--
--     psql "$OWNER_DSN" -c "SET intake.app_role = 'intake_app'" -f eventstore/roles.sql
--
-- The log (events), its seals and the read-access record only ever get INSERT
-- and SELECT; UPDATE, DELETE and TRUNCATE are refused by privilege AND by
-- trigger, and only the owner can ALTER a table (disable its triggers). Read
-- models (dispatch's tables) stay fully writable: projections rebuild them.
-- Idempotent: run it again after every migration (new tables need grants).
DO $roles$
DECLARE
    app text := current_setting('intake.app_role');
    tbl text;
BEGIN
    IF app IS NULL OR app = '' THEN
        RAISE EXCEPTION 'set intake.app_role to the application role first';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = app) THEN
        EXECUTE format('CREATE ROLE %I LOGIN', app);
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = app AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'the application role % must not be a superuser', app;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), app);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', app);
    -- Lets intake_horizon() see other databases' backend_xid, so that their
    -- transactions do not hold our readers back (eventstore/README.md); without
    -- it the horizon is the cluster-wide xmin (safe, only slower to advance).
    BEGIN
        EXECUTE format('GRANT pg_read_all_stats TO %I', app);
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'pg_read_all_stats not granted to %: the owner may not grant it', app;
    END;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO %I', app);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', app);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO %I', app);
    -- The append-only tables: INSERT and SELECT only.
    FOREACH tbl IN ARRAY ARRAY['events', 'seals', 'access_log'] LOOP
        IF to_regclass('public.' || tbl) IS NOT NULL THEN
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM %I', tbl, app);
        END IF;
    END LOOP;
    -- Idempotency keys are written once by intake_append and never changed.
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON idempotency_keys FROM %I', app);
    -- Migrations bookkeeping is the owner's.
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON intake_migrations FROM %I', app);
END
$roles$;
