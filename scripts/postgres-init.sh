#!/usr/bin/env bash
# Runs once, when the postgres container initialises its volume (docker-entrypoint-initdb.d):
# makes Herald's owner and runtime roles and its database (scripts/postgres-roles.sql).
set -euo pipefail
: "${HERALD_OWNER_PASSWORD:?set by make services (.env)}" "${HERALD_APP_PASSWORD:?set by make services (.env)}"
# The passwords go through psql's standard input, never its arguments.
{
	printf '\\set owner_password %s\n' "$HERALD_OWNER_PASSWORD"
	printf '\\set app_password %s\n' "$HERALD_APP_PASSWORD"
	cat /herald/postgres-roles.sql
} | psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres
