# shellcheck shell=bash disable=SC2034
# pg.sh - the benchmark runners' throwaway PostgreSQL cluster, sourced by
# run.sh, swarm-bench.sh and proxy.sh. Expects PG (its directory), WORK,
# PGBIN and say(); the cluster itself is tests/services/postgres.sh.
#
#   bench_pg_start   starts it: BENCH_PG_URI (the hub role's URI) and
#                    BENCH_PG_VERSION; 1 (with the log's tail) on failure
#   bench_psql ARGS  psql as the superuser over the cluster's socket
#   bench_pg_stop    stops it; BENCH_PG_SOCKDIR is then the socket
#                    directory (outside WORK) for the caller to remove

BENCH_PG_URI=""
BENCH_PG_VERSION=""
BENCH_PG_SOCKDIR=""

bench_psql() {
	runuser -u postgres -- "$PGBIN/psql" -X -h "$(cat "$PG/sockdir")" \
	    -p "$(cat "$PG/port")" -U postgres -d postgres "$@"
}

bench_pg_start() {
	local line
	if ! line=$(tests/services/postgres.sh start "$PG" \
	    2>"$WORK/postgres.log" | grep '^SWARMHUB_TEST_DB='); then
		tail -n 20 "$WORK/postgres.log" >&2
		return 1
	fi
	BENCH_PG_URI=${line#SWARMHUB_TEST_DB=}
	BENCH_PG_VERSION=$(bench_psql -tA -c "SHOW server_version")
}

bench_pg_stop() {
	BENCH_PG_SOCKDIR=""
	[ -f "$PG/sockdir" ] && BENCH_PG_SOCKDIR=$(cat "$PG/sockdir")
	tests/services/postgres.sh stop "$PG" >/dev/null 2>&1 ||
	    say "could not stop PostgreSQL in $PG"
}
