#!/bin/bash
#
# run.sh - the soak test (make soak): SOAK_USERS users with real Jupyter
# servers work through the hub for SOAK_MINUTES while the hub (twice),
# PostgreSQL and dockerd are restarted. See soak.py for what is measured.
#
# Starts a throwaway PostgreSQL cluster (tests/services/postgres.sh) and the
# Docker swarm (tests/services/docker.sh start), builds the base and
# swarmhub/notebook images when missing, runs soak.py, and on any exit
# removes every service labelled swarmhub.hub=soak<pid>, stops its
# PostgreSQL and removes its scratch directory (the hub log stays in
# SOAK_OUT). dockerd, the swarm and the network are shared: never stopped
# here, except that soak.py restarts dockerd once (SOAK_RESTART_DOCKERD=0
# skips that, since it kills every container on this machine).
#
#   SOAK_MINUTES=30 SOAK_USERS=50 SOAK_RESTART_DOCKERD=1   (and soak.py's)
#   SOAK_HUB_BIN=bin/swarmhub   the hub binary
#   SOAK_OUT=DIR                logs (default tests/out/soak-<time>-<pid>)
#
# Results: tests/soak/results/soak.md (also printed). Exit 0 when every check
# passes, 1 when one fails, 2 when the soak could not be set up.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

say() { echo "soak: $*" >&2; }

HUB_ID=soak$$
WORK=$(mktemp -d /tmp/swarmhub-soak.XXXXXX)
chmod 755 "$WORK"	# the PostgreSQL server runs as user postgres
PG="$WORK/pg"
PY_PID=""
RC=2
export SOAK_OUT=${SOAK_OUT:-$ROOT/tests/out/soak-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$SOAK_OUT"

cleanup() {
	local sockdir=""

	trap - EXIT INT TERM HUP
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM "$PY_PID" 2>/dev/null || true
		wait "$PY_PID" 2>/dev/null || true
	fi
	say "removing the services labelled swarmhub.hub=$HUB_ID"
	tests/services/docker.sh cleanup "$HUB_ID" >/dev/null 2>&1 ||
	    say "could not remove the services labelled swarmhub.hub=$HUB_ID"
	[ -f "$PG/sockdir" ] && sockdir=$(cat "$PG/sockdir")
	tests/services/postgres.sh stop "$PG" >/dev/null 2>&1 ||
	    say "could not stop PostgreSQL in $PG"
	case $sockdir in /tmp/shpg.*) rm -rf "$sockdir" ;; esac
	rm -rf "$WORK"
	exit "$RC"
}
trap cleanup EXIT
trap 'RC=130; exit 130' INT
trap 'RC=143; exit 143' TERM HUP

if ! line=$(tests/services/docker.sh start 2>"$SOAK_OUT/docker.log" |
    grep '^SWARMHUB_TEST_DOCKER_NETWORK='); then
	tail -n 20 "$SOAK_OUT/docker.log" >&2
	say "could not start Docker (tests/services/docker.sh start)"
	exit 2
fi
export "$line"
if ! docker image inspect swarmhub/notebook:latest >/dev/null 2>&1; then
	say "building the images swarmhub/debian and swarmhub/notebook"
	if ! { images/build-base.sh >/dev/null &&
	    docker build -q -t swarmhub/notebook:latest images/notebook \
	    >/dev/null; } 2>"$SOAK_OUT/images.log"; then
		tail -n 20 "$SOAK_OUT/images.log" >&2
		say "could not build swarmhub/notebook (images/build-base.sh)"
		exit 2
	fi
fi
if ! line=$(tests/services/postgres.sh start "$PG" \
    2>"$SOAK_OUT/postgres.log" | grep '^SWARMHUB_TEST_DB='); then
	tail -n 20 "$SOAK_OUT/postgres.log" >&2
	say "could not start PostgreSQL (tests/services/postgres.sh)"
	exit 2
fi
export "$line"
export SOAK_PG_DIR="$PG" SOAK_WORK="$WORK" SOAK_HUB_ID="$HUB_ID"
export SOAK_HUB_BIN=${SOAK_HUB_BIN:-$ROOT/bin/swarmhub}

say "${SOAK_USERS:-50} users, ${SOAK_MINUTES:-30} min; logs in $SOAK_OUT"
# Debian's Python (python3-requests, python3-websocket)
/usr/bin/python3 -u "$HERE/soak.py" &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID=""
exit "$RC"
