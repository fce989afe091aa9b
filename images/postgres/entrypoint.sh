#!/bin/bash
# postgres-entrypoint - initdb on first start, then exec postgres as postgres.
set -euo pipefail
say() { echo "postgres-entrypoint: $*" >&2; }
: "${PGDATA:=/var/lib/postgresql/data}"
USER_=${POSTGRES_USER:-postgres}
DB=${POSTGRES_DB:-$USER_}
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups \
	    --inh-caps=-all -- "$0" "$@"
fi
if [ "${1:-}" != postgres ]; then exec "$@"; fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
		PW=$(cat "$POSTGRES_PASSWORD_FILE")
	else
		PW=${POSTGRES_PASSWORD:-}
	fi
	[ -n "$PW" ] || { say "set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"; exit 1; }
	say "first start: initdb in $PGDATA (superuser $USER_, database $DB)"
	pwf=$(mktemp); printf '%s\n' "$PW" >"$pwf"
	initdb -D "$PGDATA" -U "$USER_" --pwfile="$pwf" -E UTF8 --locale=C.UTF-8 \
	    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwf"
	{
		echo "listen_addresses = '*'"
		echo "password_encryption = scram-sha-256"
	} >>"$PGDATA/postgresql.conf"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	if [ "$DB" != postgres ]; then
		pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k /var/run/postgresql" start >/dev/null
		psql -h /var/run/postgresql -U "$USER_" -d postgres -v ON_ERROR_STOP=1 -q \
		    -c "CREATE DATABASE \"$DB\" OWNER \"$USER_\""
		pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
	fi
	say "initdb done"
fi
exec postgres -D "$PGDATA" -k /var/run/postgresql "${@:2}"
