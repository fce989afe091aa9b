#!/bin/bash
#
# postgres.sh - a local PostgreSQL 15 cluster for `make run` and the tests
#
#   postgres.sh start DIR   initdb on first use (role hub/hubpw, db hubdb),
#                           then start; prints SWARMHUB_TEST_DB=<uri>
#   postgres.sh stop DIR    fast shutdown; no error when not running
#
# DIR/data is the cluster, DIR/log/server.log its log, DIR/port the TCP port
# (127.0.0.1 only, chosen at random on first start and kept afterwards so a
# restart comes back where clients expect it), DIR/sockdir names the short
# Unix socket directory under /tmp (socket paths are limited to 107 bytes).
# Runs as root; the server runs as user postgres. Progress goes to stderr.
set -eu

PGBIN=/usr/lib/postgresql/15/bin

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }
as_pg() { runuser -u postgres -- "$@"; }

usage() { die "usage: postgres.sh start|stop DIR"; }

[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
[ "$(id -u)" -eq 0 ] || die "must run as root (uses runuser -u postgres)"
[ -x "$PGBIN/pg_ctl" ] || die "$PGBIN/pg_ctl not found (apt-get install postgresql)"

is_running() {
	[ -f "$DIR/data/PG_VERSION" ] &&
	    as_pg "$PGBIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

do_stop() {
	[ -d "$DIR" ] || exit 0
	DIR=$(cd "$DIR" && pwd)
	if is_running; then
		as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >&2
	fi
	exit 0
}

# Short socket dir, recreated if /tmp was cleaned.
sockdir() {
	local s=""

	[ -f "$DIR/sockdir" ] && s=$(cat "$DIR/sockdir")
	if [ -z "$s" ] || [ ! -d "$s" ]; then
		s=$(mktemp -d /tmp/shpg.XXXXXX)
		echo "$s" >"$DIR/sockdir"
	fi
	chown postgres:postgres "$s"
	chmod 755 "$s"
	echo "$s"
}

pg_start() {	# port sockdir
	as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log/server.log" -w -t 30 \
	    -o "-k $2 -p $1 -c listen_addresses=127.0.0.1 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off" start >&2
}

port_busy() {
	ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

first_start() {	# sockdir; picks a free port, retrying when it races
	local try port

	for try in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20001))
		port_busy "$port" && continue
		if pg_start "$port" "$1"; then
			echo "$port" >"$DIR/port"
			return 0
		fi
		say "start on port $port failed (attempt $try), retrying"
		sleep 0.$((RANDOM % 5))
	done
	die "could not start PostgreSQL; see $DIR/log/server.log"
}

bootstrap() {	# sockdir port: role hub + db hubdb, once
	local sql="$PGBIN/psql -X -q -v ON_ERROR_STOP=1 -h $1 -p $2 -U postgres"

	[ -f "$DIR/bootstrapped" ] && return 0
	if [ -z "$(as_pg $sql -d postgres -tAc \
	    "SELECT 1 FROM pg_roles WHERE rolname = 'hub'")" ]; then
		as_pg $sql -d postgres -c "CREATE ROLE hub LOGIN PASSWORD 'hubpw'" >&2
	fi
	if [ -z "$(as_pg $sql -d postgres -tAc \
	    "SELECT 1 FROM pg_database WHERE datname = 'hubdb'")" ]; then
		as_pg $sql -d postgres -c "CREATE DATABASE hubdb OWNER hub" >&2
	fi
	touch "$DIR/bootstrapped"
}

do_start() {
	local s port

	mkdir -p "$DIR"
	chmod 755 "$DIR"
	DIR=$(cd "$DIR" && pwd)
	as_pg test -x "$DIR" ||
	    die "$DIR is not reachable by user postgres (chmod 755 its parents)"
	mkdir -p "$DIR/log"
	chown postgres:postgres "$DIR/log"
	if [ ! -f "$DIR/data/PG_VERSION" ]; then
		say "initdb $DIR/data"
		rm -rf "$DIR/data"
		mkdir -p "$DIR/data"
		chown postgres:postgres "$DIR/data"
		chmod 700 "$DIR/data"
		as_pg "$PGBIN/initdb" -D "$DIR/data" -U postgres --no-sync \
		    -E UTF8 --locale=C.UTF-8 --auth-local=trust \
		    --auth-host=scram-sha-256 >&2
		rm -f "$DIR/port" "$DIR/bootstrapped"
	fi
	s=$(sockdir)
	if is_running; then
		say "already running"
	elif [ -f "$DIR/port" ]; then
		pg_start "$(cat "$DIR/port")" "$s" ||
		    die "could not start PostgreSQL; see $DIR/log/server.log"
	else
		first_start "$s"
	fi
	port=$(cat "$DIR/port")
	bootstrap "$s" "$port"
	echo "SWARMHUB_TEST_DB=postgresql://hub:hubpw@127.0.0.1:$port/hubdb"
}

case $CMD in
start) do_start ;;
stop) do_stop ;;
*) usage ;;
esac
