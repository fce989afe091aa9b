#!/bin/bash
#
# scale.sh - the hub's own cost as work grows (issue 14) and 60 servers
# started at once (issue 11), on the multi-node test swarm. Installs the
# bench packages, starts a throwaway PostgreSQL (tests/services/postgres.sh),
# builds the hub and, when missing, the servers' image swarmhub/test-tiny
# (images/test-tiny/build.sh), and runs tests/bench/scale.py, which starts
# the 3-node test swarm (tests/services/cluster.sh start 3; stopped again at
# its end unless it was running before) and the hub on it as users run it.
# On any exit the benchmark's services on the test swarm are removed and
# PostgreSQL stopped.
# The machine's main dockerd and swarm are never touched.
# Results: tests/bench/results/scale.md and scale.svg (also printed). Also
# run by run.sh.
#
#   SWARMHUB_CLUSTER_ID=K        the test swarm to use (default 4, so that a
#                                benchmark never collides with a test run's)
#   SWARMHUB_BENCH_QUICK=1       2,000 users, rows at 1, 20, 50; burst of 20
#   SWARMHUB_BENCH_SCALE=1,100,500, SWARMHUB_BENCH_USERS=N,
#   SWARMHUB_BENCH_BURST=N       the rows, users, servers started at once
#   SWARMHUB_BENCH_KEEP=1        keep the scratch directory afterwards
#   SWARMHUB_BENCH_IMAGE=test-notebook  the servers run the tests' Python
#                                fake notebook instead of test-tiny
#
# Exit 0 when everything could be measured (missed targets are reported,
# not failed); non-zero when PostgreSQL, the cluster or the hub could not
# be used.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
cd "$ROOT"
export SWARMHUB_CLUSTER_ID=${SWARMHUB_CLUSTER_ID:-4}

say() { echo "bench: scale: $*" >&2; }

case ${1:-} in
-h|--help)
	sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0 ;;
esac

if [ "${SWARMHUB_BENCH_ONLY:-}" = jupyterhub ]; then
	say "skipped (SWARMHUB_BENCH_ONLY=jupyterhub)"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	say "needs root (the test swarm: network namespaces, dockerd)"
	exit 1
fi

# no extra packages: the test suite's (pytest, requests) are enough
make -s all
if [ "${SWARMHUB_BENCH_IMAGE:-tiny}" = tiny ] &&
    ! docker image inspect swarmhub/test-tiny:latest >/dev/null 2>&1; then
	say "building swarmhub/test-tiny:latest"
	images/test-tiny/build.sh
fi

WORK=$(mktemp -d /tmp/swarmhub-scale.XXXXXX)
chmod 755 "$WORK"	# the PostgreSQL server runs as user postgres
PG="$WORK/pg"
PY_PID=""
RC=1

# shellcheck source=tests/bench/pg.sh
. "$HERE/pg.sh"

cleanup() {
	local host
	trap - EXIT INT TERM HUP
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM "$PY_PID" 2>/dev/null || true
		wait "$PY_PID" 2>/dev/null || true
	fi
	# scale.py removes its services itself; this catches a crash of it
	if host=$(tests/services/cluster.sh status 2>/dev/null |
	    sed -n 's/^SWARMHUB_TEST_DOCKER_HOST=//p') && [ -n "$host" ]; then
		docker -H "$host" service ls -q --filter name=scl |
		    xargs -r docker -H "$host" service rm >/dev/null 2>&1 || true
	fi
	bench_pg_stop
	if [ "$RC" = 0 ] && [ -z "${SWARMHUB_BENCH_KEEP:-}" ]; then
		rm -rf "$WORK"
		case $BENCH_PG_SOCKDIR in /tmp/shpg.*) rm -rf "$BENCH_PG_SOCKDIR" ;; esac
	else
		say "logs kept in $WORK"
	fi
}
trap cleanup EXIT
trap 'RC=130; exit 130' INT
trap 'RC=143; exit 143' TERM HUP

if ! bench_pg_start; then
	say "could not start PostgreSQL"
	exit 1
fi
export SWARMHUB_TEST_DB="$BENCH_PG_URI" SWARMHUB_TEST_PG_DIR="$PG"
export SWARMHUB_TEST_OUT="$WORK"

/usr/bin/python3 "$HERE/scale.py" &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID=""
exit "$RC"
