#!/bin/bash
# run-dev.sh - `make run`: swarmhub on embedded defaults, for a laptop or a
# first look. A local PostgreSQL cluster (kept in SWARMHUB_RUN_DIR), local
# accounts, a generated secret and admin token, and an admin account whose
# password is printed once. Any SWARMHUB_* setting in the environment wins.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SWARMHUB_RUN_DIR:-/var/lib/swarmhub-dev}
say() { echo "run: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root to run PostgreSQL as the postgres user: sudo make run"; exit 1; }
mkdir -p "$DIR"
chmod 755 "$DIR"
say "starting PostgreSQL in $DIR/pg ..."
DB=$("$ROOT/tests/services/postgres.sh" start "$DIR/pg")
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
listen=${SWARMHUB_LISTEN:-0.0.0.0:8000}
say "open http://127.0.0.1:${listen##*:}/hub/login  (Ctrl-C stops the hub; PostgreSQL keeps running:"
say "  stop it with: $ROOT/tests/services/postgres.sh stop $DIR/pg)"
say "admin CLI (token in $DIR/admin-token):"
say "  $ROOT/bin/swarmhubctl --token-file $DIR/admin-token users list"
exec "$ROOT/bin/swarmhub"
