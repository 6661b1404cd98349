#!/usr/bin/env bash
# make services: PostgreSQL and RabbitMQ for Herald, with fresh random secrets, and .env with
# those secrets — written only once the services are up and have accepted them.
#
# It takes the first way this machine offers:
#   local    PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) already run here: use
#            them, making Herald's roles, database and RabbitMQ user (as root, or as a user that
#            may run psql as postgres and rabbitmqctl);
#   compose  Docker Compose with a running engine: start the postgres and rabbitmq services;
#   install  a Debian or Ubuntu machine, as root: install both from the distribution's packages,
#            with RabbitMQ's management plugin, and start them; then as local.
# SERVICES_VIA=local|compose|install chooses one. Once .env exists its secrets are kept, and
# the way it recorded is taken again.
#
#   scripts/services.sh          set the services up
#   scripts/services.sh detect   print the way this machine would take, and nothing else
set -euo pipefail

# Detection uses only shell builtins and the tools it asks about, so that it can be tested with
# stand-ins for them (scripts/services_test.go).
case $0 in
*/*) cd "${0%/*}/.." ;;
*) cd .. ;;
esac
ENV_FILE=${SERVICES_ENV_FILE:-.env}
OS_RELEASE=${SERVICES_OS_RELEASE:-/etc/os-release}
PG_HOST=127.0.0.1
PG_PORT=5432

say() { printf 'services: %s\n' "$*"; }
die() {
	printf 'services: %s\n' "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" = 0 ]; }

compose_ready() { have docker && docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
postgres_up() { have pg_isready && pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }
rabbitmq_up() { have rabbitmq-diagnostics && rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; }
debian_like() {
	[ -r "$OS_RELEASE" ] || return 1
	local line
	while IFS= read -r line; do
		[[ $line =~ ^(ID|ID_LIKE)=.*(debian|ubuntu) ]] && return 0
	done <"$OS_RELEASE"
	return 1
}

# recorded prints the way the existing .env was made with ("# services: <way>"). An .env from
# before the way was recorded was written for docker compose, but also where compose then failed
# (it used to be written first): it counts as compose only where compose works.
recorded() {
	[ -f "$ENV_FILE" ] || return 1
	local line
	while IFS= read -r line; do
		if [[ $line =~ ^#\ services:\ ([a-z]+)$ ]]; then
			echo "${BASH_REMATCH[1]}"
			return 0
		fi
	done <"$ENV_FILE"
	compose_ready || return 1
	echo compose
}

# detect prints the way this machine gets its services: local, compose or install.
detect() {
	case ${SERVICES_VIA:-} in
	local | compose | install)
		echo "$SERVICES_VIA"
		return
		;;
	"") ;;
	*) die "SERVICES_VIA=$SERVICES_VIA: want local, compose or install" ;;
	esac
	if way=$(recorded); then
		echo "$way"
		return
	fi
	# Services already running win: compose could not bind their ports anyway.
	if postgres_up && rabbitmq_up; then
		echo local
		return
	fi
	if compose_ready; then
		echo compose
		return
	fi
	if debian_like && have apt-get; then
		is_root || die "PostgreSQL and RabbitMQ are not running here, and there is no Docker Compose: run \`sudo make services\` to install them from the distribution's packages"
		echo install
		return
	fi
	die "no PostgreSQL and RabbitMQ running on 127.0.0.1, no Docker Compose with a running engine, and not a Debian or Ubuntu machine to install them on: start PostgreSQL 13+ and RabbitMQ 3.10+ (with its management plugin) and run make services again"
}

secret() { openssl rand -hex 16; }

# load_secrets sets the secrets: those of the existing .env, or fresh ones.
load_secrets() {
	ADMIN_PASSWORD= OWNER_PASSWORD= APP_PASSWORD= MQ_PASSWORD=
	if [ -f "$ENV_FILE" ]; then
		ADMIN_PASSWORD=$(sed -n 's/^POSTGRES_PASSWORD=//p' "$ENV_FILE")
		OWNER_PASSWORD=$(sed -n 's/^HERALD_OWNER_PASSWORD=//p' "$ENV_FILE")
		APP_PASSWORD=$(sed -n 's/^HERALD_APP_PASSWORD=//p' "$ENV_FILE")
		MQ_PASSWORD=$(sed -n 's/^RABBITMQ_PASSWORD=//p' "$ENV_FILE")
	fi
	ADMIN_PASSWORD=${ADMIN_PASSWORD:-$(secret)}
	OWNER_PASSWORD=${OWNER_PASSWORD:-$(secret)}
	APP_PASSWORD=${APP_PASSWORD:-$(secret)}
	MQ_PASSWORD=${MQ_PASSWORD:-$(secret)}
}

# write_env writes .env for the way, with the PostgreSQL superuser the tests use, atomically.
write_env() { # write_env <way> <admin user> <file>
	local way=$1 admin=$2 file=$3 pg="$PG_HOST:$PG_PORT"
	(
		umask 077
		printf '%s\n' \
			"# services: $way" \
			"# Written by make services (scripts/services.sh): Herald's secrets on this machine." \
			"POSTGRES_PASSWORD=$ADMIN_PASSWORD" \
			"HERALD_OWNER_PASSWORD=$OWNER_PASSWORD" \
			"HERALD_APP_PASSWORD=$APP_PASSWORD" \
			"RABBITMQ_USER=herald" \
			"RABBITMQ_PASSWORD=$MQ_PASSWORD" \
			"HERALD_DATABASE_URL=postgres://herald_app:$APP_PASSWORD@$pg/herald?sslmode=disable" \
			"HERALD_MIGRATE_DATABASE_URL=postgres://herald:$OWNER_PASSWORD@$pg/herald?sslmode=disable" \
			"HERALD_AMQP_URL=amqp://herald:$MQ_PASSWORD@127.0.0.1:5672/" \
			"HERALD_TEST_DATABASE_URL=postgres://$admin:$ADMIN_PASSWORD@$pg/postgres?sslmode=disable" \
			"HERALD_TEST_AMQP_URL=amqp://herald:$MQ_PASSWORD@127.0.0.1:5672/" \
			"HERALD_TEST_RABBITMQ_API=http://herald:$MQ_PASSWORD@127.0.0.1:15672" >"$file"
	)
	# Run through sudo, .env belongs to the user who asked: make run and make test read it as them.
	if is_root && [ -n "${SUDO_UID:-}" ] && [ -n "${SUDO_GID:-}" ]; then
		chown "$SUDO_UID:$SUDO_GID" "$file"
	fi
}

wait_for() { # wait_for <what> <seconds> <command...>
	local what=$1 seconds=$2
	shift 2
	for _ in $(seq "$seconds"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	die "$what did not come up within ${seconds}s"
}

# pg_admin runs psql as PostgreSQL's superuser: through the local socket as the postgres user
# when this is root, else over TCP as postgres (trust, or PGPASSWORD).
pg_admin() {
	if is_root && id postgres >/dev/null 2>&1; then
		runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"
	else
		psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres "$@"
	fi
}

# can_login checks that user logs in to db over TCP with password, as Herald will.
can_login() { # can_login <user> <password> <db>
	PGPASSWORD=$2 psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$1" -d "$3" -Atc 'SELECT 1' >/dev/null
}

# rabbitmq_login checks the management API takes herald's password (curl reads it from stdin).
rabbitmq_login() {
	printf 'user = "herald:%s"\n' "$MQ_PASSWORD" | curl -fsS -o /dev/null -K - http://127.0.0.1:15672/api/whoami
}

setup_local() {
	have psql || die "psql is missing (apt-get install postgresql-client)"
	have rabbitmqctl || die "rabbitmqctl is missing: run make services where RabbitMQ runs"
	have curl || die "curl is missing"
	say "using the PostgreSQL and RabbitMQ already running on this machine"

	# The passwords go through psql's standard input, never its arguments.
	{
		printf '\\set owner_password %s\n' "$OWNER_PASSWORD"
		printf '\\set app_password %s\n' "$APP_PASSWORD"
		cat scripts/postgres-roles.sql
		# The tests create scratch databases and roles, and terminate Herald's connections.
		printf '\\set admin_password %s\n' "$ADMIN_PASSWORD"
		printf '%s\n' "SELECT 'CREATE ROLE herald_admin' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'herald_admin')\\gexec" \
			"ALTER ROLE herald_admin WITH LOGIN SUPERUSER PASSWORD :'admin_password';"
	} | pg_admin || die "could not make Herald's PostgreSQL roles (run as root, or as a user that may log in as postgres)"
	local owner
	owner=$(pg_admin -Atc "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'herald'")
	if [ "$owner" != herald ]; then
		say "warning: the database herald already exists and belongs to $owner, not herald: herald migrate cannot change it as herald."
		say "  To hand it over (as a superuser): ALTER DATABASE herald OWNER TO herald; and in it: REASSIGN OWNED BY $owner TO herald"
	fi
	say "PostgreSQL: roles herald (owner), herald_app (the services), herald_admin (the tests); database herald"

	if ! rabbitmq-plugins is_enabled rabbitmq_management >/dev/null 2>&1; then
		say "enabling RabbitMQ's management plugin (the tests make their vhosts through it)"
		rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
	fi
	# rabbitmqctl reads a password from its standard input when none is given.
	# awk reads the whole list: an early exit would fail the pipe under pipefail.
	if rabbitmqctl -q list_users | awk '$1 == "herald" { found = 1 } END { exit !found }'; then
		printf '%s\n' "$MQ_PASSWORD" | rabbitmqctl -q change_password herald >/dev/null
	else
		printf '%s\n' "$MQ_PASSWORD" | rabbitmqctl -q add_user herald >/dev/null
	fi
	# administrator: the tests make and delete a vhost each, and grant herald on it.
	rabbitmqctl -q set_user_tags herald administrator >/dev/null
	rabbitmqctl -q set_permissions -p / herald '.*' '.*' '.*' >/dev/null
	say "RabbitMQ: user herald (administrator) on vhost /"

	can_login herald "$OWNER_PASSWORD" herald || die "PostgreSQL refused herald's new password over TCP"
	can_login herald_app "$APP_PASSWORD" herald || die "PostgreSQL refused herald_app's new password over TCP"
	can_login herald_admin "$ADMIN_PASSWORD" postgres || die "PostgreSQL refused herald_admin's new password over TCP"
	wait_for "RabbitMQ's management API, as herald," 60 rabbitmq_login
	write_env local herald_admin "$ENV_FILE.tmp"
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

setup_install() {
	is_root || die "installing PostgreSQL and RabbitMQ needs root: sudo make services"
	if ! have pg_ctlcluster || ! have rabbitmq-server; then
		say "installing PostgreSQL and RabbitMQ from the distribution's packages"
		DEBIAN_FRONTEND=noninteractive apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql rabbitmq-server curl openssl
	fi
	if ! postgres_up; then
		say "starting PostgreSQL"
		local version
		version=$(ls /etc/postgresql | sort -V | tail -n1)
		pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || service postgresql start
	fi
	wait_for PostgreSQL 60 postgres_up
	if ! rabbitmq_up; then
		# Enabled before the start, it comes up with the node; on a running node, setup_local
		# enables it.
		rabbitmq-plugins enable --offline --quiet rabbitmq_management >/dev/null
		say "starting RabbitMQ"
		# Without the Erlang VM's time correction: see docs/operations.md, "RabbitMQ dies with
		# Monotonic time stepped backwards".
		service rabbitmq-server start 2>/dev/null ||
			RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='+C multi_time_warp +c false' rabbitmq-server -detached
	fi
	wait_for RabbitMQ 120 rabbitmq_up
	setup_local
}

setup_compose() {
	say "starting PostgreSQL and RabbitMQ with docker compose"
	write_env compose postgres "$ENV_FILE.tmp"
	if ! docker compose --env-file "$ENV_FILE.tmp" up -d --wait postgres rabbitmq; then
		rm -f "$ENV_FILE.tmp"
		die "docker compose could not start the services; .env is left as it was"
	fi
	# A volume made with other secrets keeps them: check the new ones are the ones in force.
	# The password goes in on standard input, not on a command line.
	if ! printf '%s' "$APP_PASSWORD" | docker compose --env-file "$ENV_FILE.tmp" exec -T postgres \
		sh -c 'PGPASSWORD=$(cat) psql -X -q -h 127.0.0.1 -U herald_app -d herald -Atc "SELECT 1"' >/dev/null; then
		rm -f "$ENV_FILE.tmp"
		die "the postgres volume was made before these secrets (by an older make services, or with its .env since deleted), and its roles do not take them: \`docker compose down -v\` deletes it and its data; then run make services again"
	fi
	wait_for "RabbitMQ's management API, as herald," 60 rabbitmq_login
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

main() {
	local way
	way=$(detect)
	if [ "${1:-}" = detect ]; then
		echo "$way"
		return
	fi
	have openssl || die "openssl is missing (it makes the secrets)"
	load_secrets
	case $way in
	local) setup_local ;;
	compose) setup_compose ;;
	install) setup_install ;;
	esac
	say "wrote $ENV_FILE; make run and make test use it"
}

main "$@"
