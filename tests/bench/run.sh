#!/bin/bash
#
# run.sh - the hub-API benchmark (`make bench`): swarmhub and JupyterHub 3.0
# side by side. Installs the extra Debian packages, starts a throwaway
# PostgreSQL cluster (tests/services/postgres.sh) with one database per hub,
# runs tests/bench/hub_api.py, and stops everything it started, also on
# failure. Results: tests/bench/results/hub-api.md (also printed).
#
#   SWARMHUB_BENCH_QUICK=1     small fast run for smoke tests
#   SWARMHUB_BENCH_ONLY=NAME   only "swarmhub" or only "jupyterhub"
#   SWARMHUB_BENCH_USERS=N     number of users (multiple of 1,000)
#   SWARMHUB_BENCH_KEEP=1      keep the scratch directory (logs) afterwards
#   SWARMHUB_BENCH_PARTS=...   which benchmarks after the hub API one (default
#                              "spawn proxy culler scale"; "" for the hub API
#                              only; scale.sh runs on the multi-node test
#                              swarm, SWARMHUB_CLUSTER_ID default 4)
#
# Exit 0 when both hubs ran (missed targets are reported, not failed);
# non-zero when a hub or PostgreSQL could not be started.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
cd "$ROOT"

say() { echo "bench: $*" >&2; }

SWARMHUB_DEPS="${SWARMHUB_DEPS:-} bench" scripts/deps.sh

WORK=$(mktemp -d /tmp/swarmhub-bench.XXXXXX)
chmod 755 "$WORK"	# the PostgreSQL server runs as user postgres
PG="$WORK/pg"
PY_PID=""
RC=1

# shellcheck source=tests/bench/pg.sh
. "$HERE/pg.sh"

cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM "$PY_PID" 2>/dev/null || true
		wait "$PY_PID" 2>/dev/null || true
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
base=${BENCH_PG_URI%/*}	# postgresql://hub:hubpw@127.0.0.1:PORT

# The hub role may not create databases: ask the superuser over the socket.
for db in bench_swarmhub bench_jupyterhub; do
	bench_psql -q -v ON_ERROR_STOP=1 \
	    -c "CREATE DATABASE $db OWNER hub" >&2
done

export BENCH_WORK="$WORK" BENCH_PG_VERSION
export BENCH_DB_SWARMHUB="$base/bench_swarmhub"
export BENCH_DB_JUPYTERHUB="$base/bench_jupyterhub"

# Debian's Python: JupyterHub and its modules are Debian packages.
/usr/bin/python3 "$HERE/hub_api.py" &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID=""
for part in ${SWARMHUB_BENCH_PARTS-spawn proxy culler scale}; do
	[ "$RC" != 0 ] && break
	"$HERE/$part.sh" & PY_PID=$!	# spawn.sh, proxy.sh, culler.sh, scale.sh
	wait "$PY_PID" || RC=$?
	PY_PID=""
done
exit "$RC"
