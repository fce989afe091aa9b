#!/bin/bash
#
# proxy.sh - the proxy benchmark: the hub's edge (edge/edge.c) vs nginx
# proxy_pass vs configurable-http-proxy 5.3, same upstream, same wrk settings,
# one run; then the real hub end to end (a spawned test notebook through the
# hub vs direct). Builds build/tests/test_edge (its bench mode is the edge
# under test), tests/bench/wsbench.c (WebSocket echo server and clients) and
# tests/bench/mtrim.c (heap figures of the edge, LD_PRELOAD),
# installs configurable-http-proxy 5.3.0 from npm into build/bench/chp (once),
# starts the Docker swarm (tests/services/docker.sh start) and a throwaway
# PostgreSQL (tests/services/postgres.sh), runs tests/bench/proxy.py, and on
# any exit stops every process it started, removes the services labelled
# swarmhub.hub=bench<pid> and stops PostgreSQL. dockerd, the swarm and the
# overlay network are shared machine state and never stopped.
# Results: tests/bench/results/proxy.md (also printed). Also run by run.sh.
#
#   SWARMHUB_BENCH_QUICK=1      3 s wrk runs and 1,000 idle WebSockets
#   SWARMHUB_BENCH_WS=N         idle WebSockets per proxy (default 10,000, or
#                               the most the fd limit allows)
#   SWARMHUB_BENCH_ONLY=NAME    "jupyterhub" skips this benchmark
#   SWARMHUB_BENCH_KEEP=1       keep the scratch directory (logs, configs)
#
# Exit 0 when everything could be measured (missed targets are reported as
# MISS); non-zero when a proxy, the upstream, Docker, PostgreSQL or the hub
# could not be used (the report is still written, with the reason).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
IMAGE=swarmhub/test-notebook:latest
CHP_VERSION=5.3.0
cd "$ROOT"

say() { echo "bench: proxy: $*" >&2; }

if [ "${SWARMHUB_BENCH_ONLY:-}" = jupyterhub ]; then
	say "skipped (SWARMHUB_BENCH_ONLY=jupyterhub)"
	exit 0
fi

SWARMHUB_DEPS="${SWARMHUB_DEPS:-} bench" scripts/deps.sh
for tool in wrk nginx node npm cc; do
	command -v "$tool" >/dev/null || { say "$tool not found"; exit 1; }
done

make --no-print-directory all build/tests/test_edge >&2

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

CHP_DIR="$ROOT/build/bench/chp"
CHP="$CHP_DIR/node_modules/.bin/configurable-http-proxy"
if ! grep -qs "\"version\": \"$CHP_VERSION\"" \
    "$CHP_DIR/node_modules/configurable-http-proxy/package.json"; then
	say "installing configurable-http-proxy@$CHP_VERSION into $CHP_DIR (npm)"
	mkdir -p "$CHP_DIR"
	npm install --no-audit --no-fund --prefix "$CHP_DIR" \
	    "configurable-http-proxy@$CHP_VERSION" >"$WORK/npm.log" 2>&1 ||
	    { tail -n 20 "$WORK/npm.log" >&2; say "npm install failed"; exit 1; }
fi

# The end-to-end part needs Docker (swarm, image) and PostgreSQL; without
# them the proxy part still runs and the report says why part 2 is missing.
skip=""
if ! line=$(tests/services/docker.sh start 2>"$WORK/docker.log" |
    grep '^SWARMHUB_TEST_DOCKER_NETWORK='); then
	tail -n 20 "$WORK/docker.log" >&2
	skip="Docker could not be started (tests/services/docker.sh start)"
elif ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
	skip="the image $IMAGE is missing (images/build-base.sh, then docker build -t $IMAGE images/test-notebook)"
else
	export BENCH_NETWORK=${line#SWARMHUB_TEST_DOCKER_NETWORK=}
	PG_STARTED=1
	if ! bench_pg_start; then
		skip="PostgreSQL could not be started"
	else
		export BENCH_DB="$BENCH_PG_URI" BENCH_PG_VERSION
	fi
fi
[ -z "$skip" ] || say "end-to-end part skipped: $skip"

export BENCH_WORK="$WORK" BENCH_WSBENCH="$WORK/wsbench" BENCH_CHP="$CHP"
export BENCH_MTRIM="$WORK/mtrim.so"
export BENCH_EDGE="$ROOT/build/tests/test_edge" BENCH_HUB_ID="$HUB_ID"
export BENCH_HUB_SKIP="$skip"

/usr/bin/python3 "$HERE/proxy.py" &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID=""
[ -z "$skip" ] || [ "$RC" != 0 ] || RC=1
exit "$RC"
