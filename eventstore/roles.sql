-- Least privilege for the application role. Run as the database owner AFTER
-- the migrations were applied (`intake serve` applies them at start when it
-- connects as the owner; with this role, run migrations once as the owner):
--
--     psql "$OWNER_DSN" -v app_role=intake_app -f eventstore/roles.sql
--
-- The log (events) and the seals only ever get INSERT and SELECT; UPDATE,
-- DELETE and TRUNCATE are refused by privilege AND by trigger. Read models
-- (dispatch's tables) stay fully writable: projections rebuild them.
\set ON_ERROR_STOP on
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') AS create_role \gset
\if :create_role
CREATE ROLE :"app_role" LOGIN;
\endif

GRANT USAGE ON SCHEMA public TO :"app_role";
-- Lets intake_horizon() see other databases' backend_xid, so that their
-- transactions do not hold our readers back (README); without it the horizon
-- is the cluster-wide xmin (safe, only slower to advance).
GRANT pg_read_all_stats TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO :"app_role";

-- The append-only tables: INSERT and SELECT only.
REVOKE UPDATE, DELETE, TRUNCATE ON events, seals FROM :"app_role";
GRANT SELECT, INSERT ON events, seals TO :"app_role";
-- Idempotency keys are written once by intake_append and never changed.
REVOKE UPDATE, DELETE, TRUNCATE ON idempotency_keys FROM :"app_role";
-- Migrations bookkeeping is the owner's.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON intake_migrations FROM :"app_role";
