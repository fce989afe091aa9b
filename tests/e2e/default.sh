#!/bin/bash
# tests/e2e/default.sh - the default path of `make up`, end to end: deploys
# the stack with scripts/up.sh exactly as a newcomer gets it (the env file
# copied from compose/swarmhub.env.example, the profiles up.sh writes, no
# extra compose file) under a stack name and ports of its own, runs
# tests/e2e/test_e2e_default.py (sign in as the printed admin, Start, a
# running notebook in headless Chromium through nginx over TLS), and ALWAYS
# removes the stack, its servers, secrets, configs and volume
# (scripts/down.sh --purge). The example env's hub id is "swarmhub", so two
# runs of this test at once on one swarm would share service names.
# Last line: "N passed, N failed". SWARMHUB_TEST_OUT: screenshots
# e2e-default-*.png, logs, e2e-default-timing.txt.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
export SWARMHUB_TEST_OUT=${SWARMHUB_TEST_OUT:-$ROOT/tests/out/e2e-default-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$SWARMHUB_TEST_OUT"
OUT=$SWARMHUB_TEST_OUT
say() { echo "e2e-default: $*" >&2; }
fail_early() { echo "FAIL e2e-default setup: $*"; echo "0 passed, 1 failed"; exit 1; }
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ID=def$$
export SWARMHUB_STACK=shub$ID
export SWARMHUB_NETWORK_NAME=$SWARMHUB_STACK-users
WORK=/var/tmp/swarmhub-$ID
export SWARMHUB_SECRETS_DIR=$WORK/secrets
export SWARMHUB_ENV_FILE=$WORK/swarmhub.env		# missing: up.sh copies the example
export SWARMHUB_PROFILES_FILE=$WORK/profiles.json	# missing: up.sh writes its own
unset SWARMHUB_COMPOSE_EXTRA SWARMHUB_HUB_PORT
SWARMHUB_HTTPS_PORT=$(free_port) SWARMHUB_HTTP_PORT=$(free_port)
export SWARMHUB_HTTPS_PORT SWARMHUB_HTTP_PORT

cleanup() {
	trap - EXIT INT TERM
	docker service logs --timestamps "${SWARMHUB_STACK}_hub" >"$OUT/e2e-default-hub.log" 2>&1 || true
	scripts/down.sh --purge >>"$OUT/e2e-default-down.log" 2>&1 ||
	    { say "scripts/down.sh failed:"; tail -n 5 "$OUT/e2e-default-down.log" >&2; }
	docker volume ls -q --filter "label=com.docker.stack.namespace=$SWARMHUB_STACK" |
	    xargs -r docker volume rm >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tests/services/docker.sh start >/dev/null || fail_early "tests/services/docker.sh start"
mkdir -p "$WORK"
export E2E_T0=$(date +%s)
say "make up with the example env: stack $SWARMHUB_STACK (https://127.0.0.1:$SWARMHUB_HTTPS_PORT)"
scripts/up.sh 2>&1 | tee "$OUT/e2e-default-up.log" >&2
[ "${PIPESTATUS[0]}" = 0 ] || fail_early "scripts/up.sh (see $OUT/e2e-default-up.log)"
cmp -s compose/swarmhub.env.example "$SWARMHUB_ENV_FILE" ||
    fail_early "up.sh did not use the example env as it is"
grep -q "files are not kept" "$OUT/e2e-default-up.log" ||
    fail_early "up.sh did not say that SWARMHUB_HOME is empty"
say "healthy after $(( $(date +%s) - E2E_T0 )) s"

export E2E_HTTPS_URL=https://127.0.0.1:$SWARMHUB_HTTPS_PORT
export E2E_CA=$SWARMHUB_SECRETS_DIR/tls_cert
export E2E_ADMIN_TOKEN_FILE=$SWARMHUB_SECRETS_DIR/admin_token
export E2E_ADMIN_PASSWORD_FILE=$SWARMHUB_SECRETS_DIR/admin_password
LOG="$OUT/e2e-default-pytest.log"
/usr/bin/python3 -m pytest -q -p no:cacheprovider -s tests/e2e/test_e2e_default.py \
    -o junit_family=xunit2 --junitxml="$OUT/e2e-default-pytest.xml" >"$LOG" 2>&1
rc=$?
summary=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$LOG" | tail -n 1)
p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
f=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
e=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
P=${p:-0}; F=$(( ${f:-0} + ${e:-0} ))
if [ "$rc" != 0 ]; then
	tail -n 40 "$LOG"
	[ "$F" = 0 ] && F=1
fi
cat "$OUT/e2e-default-timing.txt" 2>/dev/null >&2
cleanup
echo "$P passed, $F failed"
[ "$F" = 0 ]
