#!/bin/bash
# run-dev.sh - `make run`: swarmhub on embedded defaults, for a laptop or a
# first look. A local PostgreSQL cluster (kept in SWARMHUB_RUN_DIR), local
# accounts, a generated secret and admin token, and an admin account whose
# password is printed once. When Docker is installed or installable, it
# also sets up spawning on this machine (scripts/run-docker.sh: dockerd, a
# one-node swarm, a network, the notebook image, local homes,
# CONNECT=gwbridge); without it the hub starts with spawning off and says
# why. Any SWARMHUB_* setting in the environment wins; SWARMHUB_NETWORK set
# or SWARMHUB_RUN_DOCKER=0 leaves Docker alone.
#
#   run-dev.sh           start (the hub runs in the foreground)
#   run-dev.sh --clean   stop the hub and PostgreSQL, undo what the setup
#                        created (never a swarm or dockerd it found), and
#                        remove SWARMHUB_RUN_DIR (database and homes)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SWARMHUB_RUN_DIR:-/var/lib/swarmhub-dev}
say() { echo "run: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root to run PostgreSQL as the postgres user: sudo make run"; exit 1; }

clean() {
	local pid

	pid=$(cat "$DIR/hub.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = swarmhub ]; then
		kill "$pid" && say "stopped the hub (pid $pid)"
		for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
	fi
	"$ROOT/scripts/run-docker.sh" undo "$DIR"
	[ ! -d "$DIR/pg" ] || "$ROOT/scripts/postgres.sh" stop "$DIR/pg"
	rm -rf "$DIR"
	say "removed $DIR"
}
case ${1:-} in
--clean) clean; exit 0 ;;
"") ;;
*) say "usage: run-dev.sh [--clean]"; exit 2 ;;
esac

mkdir -p "$DIR"
chmod 755 "$DIR"
say "starting PostgreSQL in $DIR/pg ..."
DB=$("$ROOT/scripts/postgres.sh" start "$DIR/pg")
DB=${DB#SWARMHUB_TEST_DB=}
[ -s "$DIR/secret" ] || (umask 077; openssl rand -hex 32 > "$DIR/secret")
[ -s "$DIR/admin-token" ] || (umask 077; openssl rand -hex 32 > "$DIR/admin-token")
export SWARMHUB_DB=${SWARMHUB_DB:-$DB}
[ -n "${SWARMHUB_SECRET:-}" ] || export SWARMHUB_SECRET_FILE=${SWARMHUB_SECRET_FILE:-$DIR/secret}
[ -n "${SWARMHUB_ADMIN_TOKEN:-}" ] || export SWARMHUB_ADMIN_TOKEN_FILE=${SWARMHUB_ADMIN_TOKEN_FILE:-$DIR/admin-token}
export SWARMHUB_AUTH=${SWARMHUB_AUTH:-local}
if [ "$SWARMHUB_AUTH" = local ] && [ ! -s "$DIR/admin-password" ]; then
	(umask 077; openssl rand -base64 12 | tr -d '/+=' > "$DIR/admin-password")
	"$ROOT/bin/swarmhub" set-password admin --admin < "$DIR/admin-password"
	say "created the admin account: user 'admin', password '$(cat "$DIR/admin-password")'"
	say "(kept in $DIR/admin-password; change it with swarmhubctl users set-password admin)"
fi

# ---- spawning on this machine ---------------------------------------------------
if [ -n "${SWARMHUB_NETWORK:-}" ]; then
	say "SWARMHUB_NETWORK is set: spawning as configured, Docker left alone"
elif [ "${SWARMHUB_RUN_DOCKER:-1}" = 0 ]; then
	say "spawning is off (SWARMHUB_RUN_DOCKER=0): people can sign in but not start servers"
elif out=$("$ROOT/scripts/run-docker.sh" setup "$DIR"); then
	while IFS='=' read -r k v; do
		# settings from the environment win
		[ -n "$k" ] && [ -z "${!k:-}" ] && export "$k=$v"
	done <<<"$out"
	say "undo all of this with: make run-clean (or $ROOT/scripts/run-dev.sh --clean)"
else
	say "spawning is off (no usable Docker, reason above): people can sign in but"
	say "not start servers. Install docker.io and run make run again."
fi

listen=${SWARMHUB_LISTEN:-0.0.0.0:8000}
say "open http://127.0.0.1:${listen##*:}/hub/login  (Ctrl-C stops the hub; PostgreSQL keeps running:"
say "  stop it with: $ROOT/scripts/postgres.sh stop $DIR/pg, or remove everything"
say "  make run made with: make run-clean)"
say "admin CLI (token in $DIR/admin-token):"
say "  $ROOT/bin/swarmhubctl --token-file $DIR/admin-token users list"
echo $$ >"$DIR/hub.pid"
exec "$ROOT/bin/swarmhub"
