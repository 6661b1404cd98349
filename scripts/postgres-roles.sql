-- Herald's two database roles and its database, made idempotently. Run by psql as a superuser
-- with the variables owner_password and app_password set (scripts/services.sh on a local server,
-- scripts/postgres-init.sh in the postgres container):
--
--   herald      owns the database and every table: `herald migrate` runs as it
--               (HERALD_MIGRATE_DATABASE_URL).
--   herald_app  the role the services run as (HERALD_DATABASE_URL): `herald migrate` grants it
--               SELECT and INSERT on event_log and what else the services need; it owns nothing,
--               so it can neither alter, disable the triggers of, nor drop the log.
\set ON_ERROR_STOP on

SELECT 'CREATE ROLE herald' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'herald')\gexec
ALTER ROLE herald WITH LOGIN NOSUPERUSER NOCREATEROLE PASSWORD :'owner_password';

SELECT 'CREATE ROLE herald_app' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'herald_app')\gexec
ALTER ROLE herald_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';

SELECT 'CREATE DATABASE herald OWNER herald' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'herald')\gexec
