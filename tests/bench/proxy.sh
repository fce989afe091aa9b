#!/bin/bash
#
# proxy.sh - the proxy benchmark on the real path: bin/swarmhub (PostgreSQL,
# local auth, spawner on the local swarm, CONNECT=gwbridge) in front of users'
# servers it spawns (a static nginx, a C WebSocket echo server, Jupyter
# Notebook 6), side by side with nginx proxy_pass to the same containers and
# with direct access, one run. Builds bin/swarmhub, tests/bench/wsbench.c
# (WebSocket echo server and clients) and tests/bench/mtrim.c (the hub's heap
# figures, LD_PRELOAD), starts the Docker swarm (tests/services/docker.sh
# start) and a throwaway PostgreSQL (tests/services/postgres.sh), runs
# tests/bench/proxy.py, and on any exit stops every process it started,
# removes the services labelled swarmhub.hub=bench<pid> and stops PostgreSQL.
# dockerd, the swarm and the overlay network are shared machine state and
# never stopped. Needs the images swarmhub/nginx:latest,
# swarmhub/test-notebook:latest and swarmhub/notebook:latest (tests/run.sh
# builds them), and builds swarmhub/bench-upstream:latest from the first
# (images/bench-upstream: no HEALTHCHECK) when missing. Results:
# tests/bench/results/proxy.md (also printed). Also run by run.sh.
#
#   SWARMHUB_BENCH_QUICK=1      3 s wrk runs, one round, 1,000 idle WebSockets
#   SWARMHUB_BENCH_WS=N         idle WebSockets (default 9,000, or the most
#                               the fd limit allows)
#   SWARMHUB_BENCH_ONLY=NAME    "jupyterhub" skips this benchmark
#   SWARMHUB_BENCH_KEEP=1       keep the scratch directory (logs, configs)
#   SWARMHUB_BENCH_HOLD=1       once all is up, write <scratch>/hold (hub pid,
#                               URLs, headers) and wait until it is removed
#
# Exit 0 when everything could be measured (missed targets are reported as
# MISS); non-zero when nginx, Docker, an image, PostgreSQL or the hub could
# not be used (the report is still written, with the reason).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
IMAGES="swarmhub/nginx:latest swarmhub/test-notebook:latest swarmhub/notebook:latest"
UPSTREAM_IMAGE=swarmhub/bench-upstream:latest
cd "$ROOT"

say() { echo "bench: proxy: $*" >&2; }

if [ "${1:-}" = --help ]; then
	sed -n '3,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
	exit 0
fi
if [ "${SWARMHUB_BENCH_ONLY:-}" = jupyterhub ]; then
	say "skipped (SWARMHUB_BENCH_ONLY=jupyterhub)"
	exit 0
fi

SWARMHUB_DEPS="${SWARMHUB_DEPS:-} bench" scripts/deps.sh
for tool in wrk nginx cc; do
	command -v "$tool" >/dev/null || { say "$tool not found"; exit 1; }
done

make --no-print-directory all >&2

HUB_ID=bench$$
WORK=$(mktemp -d /tmp/swarmhub-proxy.XXXXXX)
chmod 755 "$WORK"	# the PostgreSQL server runs as user postgres
PG="$WORK/pg"
PY_PID=""
PG_STARTED=""
RC=1

# shellcheck source=tests/bench/pg.sh
. "$HERE/pg.sh"

cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM "$PY_PID" 2>/dev/null || true	# proxy.py stops its children
		wait "$PY_PID" 2>/dev/null || true
	fi
	tests/services/docker.sh cleanup "$HUB_ID" >/dev/null 2>&1 ||
	    say "could not remove the services labelled swarmhub.hub=$HUB_ID"
	[ -z "$PG_STARTED" ] || bench_pg_stop
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

cc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o "$WORK/wsbench" \
    "$HERE/wsbench.c" -lcrypto
cc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -shared -fPIC \
    -o "$WORK/mtrim.so" "$HERE/mtrim.c"

if ! line=$(tests/services/docker.sh start 2>"$WORK/docker.log" |
    grep '^SWARMHUB_TEST_DOCKER_NETWORK='); then
	tail -n 20 "$WORK/docker.log" >&2
	say "Docker could not be started (tests/services/docker.sh start)"
	exit 1
fi
for image in $IMAGES; do
	docker image inspect "$image" >/dev/null 2>&1 ||
	    { say "the image $image is missing (tests/run.sh builds it; see images/README.md)"; exit 1; }
done
docker image inspect "$UPSTREAM_IMAGE" >/dev/null 2>&1 ||
    docker build -q -t "$UPSTREAM_IMAGE" images/bench-upstream >/dev/null ||
    { say "could not build $UPSTREAM_IMAGE (images/bench-upstream)"; exit 1; }
export BENCH_NETWORK=${line#SWARMHUB_TEST_DOCKER_NETWORK=}
PG_STARTED=1
bench_pg_start || { say "PostgreSQL could not be started"; exit 1; }
export BENCH_DB="$BENCH_PG_URI" BENCH_PG_VERSION

export BENCH_WORK="$WORK" BENCH_WSBENCH="$WORK/wsbench"
export BENCH_MTRIM="$WORK/mtrim.so" BENCH_HUB_ID="$HUB_ID"

/usr/bin/python3 "$HERE/proxy.py" &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID=""
exit "$RC"
