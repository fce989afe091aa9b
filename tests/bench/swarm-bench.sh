#!/bin/bash
#
# swarm-bench.sh NAME - runs tests/bench/NAME.py (spawn or culler) against a
# hub with the spawner on the local swarm: installs the bench packages,
# starts a throwaway PostgreSQL cluster (tests/services/postgres.sh) and the
# Docker swarm (tests/services/docker.sh start: dockerd, one-node swarm,
# overlay network), runs the benchmark, and on any exit removes every
# service labelled swarmhub.hub=bench<pid> and stops the PostgreSQL it
# started. dockerd, the swarm and the network are shared: never stopped
# here. spawn.sh and culler.sh call it; their headers list the settings.
#
# Needs the image swarmhub/test-notebook:latest (images/build-base.sh, then
# docker build -t swarmhub/test-notebook:latest images/test-notebook).
# Exit 0 when the hub and Docker could be used (missed targets are reported,
# not failed); non-zero when PostgreSQL, Docker or the hub could not be used.
NAME=${1:?usage: swarm-bench.sh spawn|culler}
case $NAME in spawn|culler) ;; *) echo "swarm-bench.sh: unknown benchmark '$NAME'" >&2; exit 2;; esac
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
IMAGE=swarmhub/test-notebook:latest
cd "$ROOT"

say() { echo "bench: $NAME: $*" >&2; }

if [ "${SWARMHUB_BENCH_ONLY:-}" = jupyterhub ]; then
	say "skipped (SWARMHUB_BENCH_ONLY=jupyterhub)"
	exit 0
fi

SWARMHUB_DEPS="${SWARMHUB_DEPS:-} bench" scripts/deps.sh

HUB_ID=bench$$
WORK=$(mktemp -d /tmp/swarmhub-$NAME.XXXXXX)
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
	# NAME.py removes its services itself; this catches a crash of it.
	tests/services/docker.sh cleanup "$HUB_ID" >/dev/null 2>&1 ||
	    say "could not remove the services labelled swarmhub.hub=$HUB_ID"
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

if ! line=$(tests/services/docker.sh start 2>"$WORK/docker.log" |
    grep '^SWARMHUB_TEST_DOCKER_NETWORK='); then
	tail -n 20 "$WORK/docker.log" >&2
	say "could not start Docker (tests/services/docker.sh start)"
	exit 1
fi
network=${line#SWARMHUB_TEST_DOCKER_NETWORK=}
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
	say "image $IMAGE is missing: run images/build-base.sh, then"
	say "  docker build -t $IMAGE images/test-notebook"
	exit 1
fi

if ! bench_pg_start; then
	say "could not start PostgreSQL"
	exit 1
fi

export BENCH_WORK="$WORK" BENCH_PG_VERSION BENCH_HUB_ID="$HUB_ID"
export BENCH_DB="$BENCH_PG_URI" BENCH_NETWORK="$network"

# Debian's Python, standard library only.
/usr/bin/python3 "$HERE/$NAME.py" &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID=""
exit "$RC"
