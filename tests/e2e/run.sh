#!/bin/bash
# tests/e2e/run.sh - the end-to-end test of the whole stack.
#
# From dockerd + swarm (tests/services/docker.sh start): builds the images
# (the Debian base, notebook, test LDAP and NFS; scripts/up.sh builds hub,
# nginx and PostgreSQL), deploys the stack with scripts/up.sh (the same
# `docker stack deploy -c compose/docker-compose.yml` a user runs, plus the
# test-only tests/e2e/stack-test.yml adding slapd and nfs-ganesha) under a
# stack name of its own with a test env file, runs tests/e2e/test_e2e.py
# (pytest + headless Chromium through nginx over TLS), and ALWAYS removes
# the stack, the users' services, its secrets, configs, volume and the
# exported directory (scripts/down.sh --purge), also on failure or Ctrl-C.
# Last line: "N passed, N failed"; exit status non-zero on any failure.
#
# Environment: SWARMHUB_TEST_OUT (screenshots e2e-*.png, logs, timings),
#   SWARMHUB_E2E_PYTEST_ARGS  extra pytest arguments (e.g. "-x" or "-k 'not cull'")
#   SWARMHUB_E2E_KEEP=1  leave the stack running for a look (prints how to
#                        remove it)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
export SWARMHUB_TEST_OUT=${SWARMHUB_TEST_OUT:-$ROOT/tests/out/e2e-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$SWARMHUB_TEST_OUT"
OUT=$SWARMHUB_TEST_OUT
now() { date +%s; }
say() { echo "e2e: $*" >&2; }
T0=$(now)
TIMES="$OUT/e2e-timings.txt"
: >"$TIMES"
mark() { echo "$1 $(( $(now) - $2 )) s" | tee -a "$TIMES" >&2; }

fail_early() {	# MESSAGE: a setup failure counts as one failed test
	echo "FAIL e2e setup: $*"
	echo "0 passed, 1 failed"
	exit 1
}

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- names -------------------------------------------------------------------
ID=e2e$$
export SWARMHUB_STACK=shub$ID
export SWARMHUB_NETWORK_NAME=$SWARMHUB_STACK-users
# a users' subnet of its own (not up.sh's default 10.250.0.0/20), so that
# a tests/e2e/default.sh stack on this swarm at the same time does not clash
export SWARMHUB_USERS_SUBNET=10.$(( 200 + RANDOM % 40 )).$(( RANDOM % 16 * 16 )).0/20
WORK=/var/tmp/swarmhub-$ID
export SWARMHUB_SECRETS_DIR=$WORK/secrets
export SWARMHUB_ENV_FILE=$WORK/swarmhub.env
export SWARMHUB_PROFILES_FILE=$WORK/profiles.json
export SWARMHUB_COMPOSE_EXTRA=tests/e2e/stack-test.yml
export E2E_EXPORT=$WORK/export
SWARMHUB_HTTPS_PORT=$(free_port) SWARMHUB_HTTP_PORT=$(free_port)
export SWARMHUB_HTTPS_PORT SWARMHUB_HTTP_PORT
# the default deployment: the hub's own port stays unpublished, admin calls
# go through nginx's TLS like everything else
unset SWARMHUB_HUB_PORT
export SWARMHUB_UP_TIMEOUT=240

cleanup() {
	trap - EXIT INT TERM
	local t
	t=$(now)
	if [ "${SWARMHUB_E2E_KEEP:-0}" = 1 ]; then
		say "SWARMHUB_E2E_KEEP=1: stack $SWARMHUB_STACK left running; remove with:"
		say "  SWARMHUB_STACK=$SWARMHUB_STACK SWARMHUB_ENV_FILE=$SWARMHUB_ENV_FILE" \
		    "SWARMHUB_SECRETS_DIR=$SWARMHUB_SECRETS_DIR SWARMHUB_NETWORK_NAME=$SWARMHUB_NETWORK_NAME" \
		    "scripts/down.sh --purge && rm -rf $WORK"
		return
	fi
	if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$SWARMHUB_STACK" ||
	   docker network inspect "$SWARMHUB_NETWORK_NAME" >/dev/null 2>&1 ||
	   [ -d "$WORK" ]; then
		docker service logs --timestamps "${SWARMHUB_STACK}_hub" >"$OUT/e2e-hub.log" 2>&1 || true
		docker service logs --timestamps "${SWARMHUB_STACK}_proxy" >"$OUT/e2e-nginx.log" 2>&1 || true
		scripts/down.sh --purge >>"$OUT/e2e-down.log" 2>&1 ||
		    { say "scripts/down.sh failed:"; tail -n 5 "$OUT/e2e-down.log" >&2; }
		# anything labelled with our hub id or stack (belt and braces)
		docker service ls -q --filter "label=swarmhub.hub=$SWARMHUB_STACK" | xargs -r docker service rm >/dev/null 2>&1
		for k in secret config; do
			docker $k ls -q --filter "label=com.docker.stack.namespace=$SWARMHUB_STACK" |
			    xargs -r docker $k rm >/dev/null 2>&1
		done
		docker volume ls -q --filter "label=com.docker.stack.namespace=$SWARMHUB_STACK" |
		    xargs -r docker volume rm >/dev/null 2>&1
		rm -rf "$WORK"
		mark "teardown" "$t"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- docker, images -----------------------------------------------------------
t=$(now)
tests/services/docker.sh start >/dev/null || fail_early "tests/services/docker.sh start"
images/build-base.sh >/dev/null 2>"$OUT/e2e-build.log" || fail_early "images/build-base.sh (see $OUT/e2e-build.log)"
for spec in "swarmhub/notebook:latest images/notebook" "swarmhub/test-notebook:latest images/test-notebook" \
            "swarmhub/test-ldap:latest images/ldap" "swarmhub/test-nfs:latest images/nfs"; do
	set -- $spec
	docker build -q -t "$1" "$2" >/dev/null 2>>"$OUT/e2e-build.log" ||
	    fail_early "docker build $1 (see $OUT/e2e-build.log)"
done
mark "images (base, notebook, test-notebook, test-ldap, test-nfs)" "$t"

# ---- the test site: env file, profiles, secrets, export -------------------------------
mkdir -p "$WORK/export" "$SWARMHUB_SECRETS_DIR"
chmod 755 "$WORK" "$WORK/export"
chmod 700 "$SWARMHUB_SECRETS_DIR"
printf 'readerpw\n' >"$SWARMHUB_SECRETS_DIR/ldap_bind_password"
cat >"$SWARMHUB_ENV_FILE" <<EOF
# written by tests/e2e/run.sh
SWARMHUB_HUB_NAME=swarmhub e2e
SWARMHUB_LOG_LEVEL=info
SWARMHUB_TRUSTED_PROXIES=*
SWARMHUB_DB_WAIT=120
SWARMHUB_AUTH=ldap
SWARMHUB_LDAP_URI=ldap://ldap:389
SWARMHUB_LDAP_BIND_DN_TEMPLATE=uid={username},ou=People,dc=example,dc=com
SWARMHUB_LDAP_SEARCH_BASE=ou=People,dc=example,dc=com
SWARMHUB_LDAP_SEARCH_USER=cn=reader,dc=example,dc=com
SWARMHUB_LDAP_GROUP_BASE=ou=Groups,dc=example,dc=com
SWARMHUB_LDAP_ADMIN_GROUPS=hub-admins
SWARMHUB_HUB_ID=$SWARMHUB_STACK
SWARMHUB_SERVICE_NAME_TEMPLATE=$SWARMHUB_STACK-{user}
SWARMHUB_HOME=nfs://nfs/export?nfsport=2049&mountport=20048&uid=0&gid=0
SWARMHUB_HOME_MOUNT=bind
SWARMHUB_HOME_BIND_ROOT=$E2E_EXPORT
SWARMHUB_HOME_UID=1000
SWARMHUB_HOME_GID=100
SWARMHUB_START_TIMEOUT=120
SWARMHUB_HTTP_TIMEOUT=120
# short culling for the test (the default is 3000 s / every 300 s)
SWARMHUB_CULL_TIMEOUT=30
SWARMHUB_CULL_EVERY=5
EOF
cat >"$SWARMHUB_PROFILES_FILE" <<'EOF'
{
  "cpu_reservation_ratio": 0.1,
  "images": {
    "notebook": {"image": "swarmhub/notebook:latest",
                 "description": "Jupyter Notebook 6 (Debian 12)",
                 "cmd": ["python3", "-m", "notebook", "--ip=0.0.0.0", "--port={port}",
                         "--no-browser", "--NotebookApp.base_url={base_url}",
                         "--notebook-dir=/home/jovyan/work"],
                 "port": 8888, "env": {"HOME": "/home/jovyan/work"}},
    "tiny": {"image": "swarmhub/test-notebook:latest",
             "description": "a stand-in for tests"}
  },
  "profiles": {
    "default": {"images": ["tiny", "notebook"],
                "cpu": {"min": 0.5, "max": 2, "default": 2},
                "mem_gb": {"min": 0.5, "max": 2, "default": 2}}
  }
}
EOF

# ---- deploy -----------------------------------------------------------------------
t=$(now)
say "deploying stack $SWARMHUB_STACK (https://127.0.0.1:$SWARMHUB_HTTPS_PORT)"
scripts/up.sh 2>&1 | tee "$OUT/e2e-up.log" >&2
[ "${PIPESTATUS[0]}" = 0 ] || fail_early "scripts/up.sh (see $OUT/e2e-up.log)"
mark "images (hub, nginx, postgres) + deploy until healthy" "$t"
ports=$(docker service inspect -f '{{json .Spec.EndpointSpec.Ports}}' "${SWARMHUB_STACK}_hub")
case $ports in
null|"[]") ;;
*) fail_early "the hub's port is published by default: $ports" ;;
esac

# ---- the browser test ------------------------------------------------------------------
t=$(now)
export E2E_HTTPS_URL=https://127.0.0.1:$SWARMHUB_HTTPS_PORT
export E2E_CA=$SWARMHUB_SECRETS_DIR/tls_cert
export E2E_ADMIN_TOKEN_FILE=$SWARMHUB_SECRETS_DIR/admin_token
LOG="$OUT/e2e-pytest.log"
eval "set -- ${SWARMHUB_E2E_PYTEST_ARGS:-}"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e/test_e2e.py "$@" \
    -o junit_family=xunit2 --junitxml="$OUT/e2e-pytest.xml" >"$LOG" 2>&1
rc=$?
mark "pytest (browser steps)" "$t"
summary=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$LOG" | tail -n 1)
p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
f=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
e=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
P=${p:-0}; F=$(( ${f:-0} + ${e:-0} ))
if [ "$rc" != 0 ]; then
	grep -E '^(FAILED|ERROR)' "$LOG" | head -n 40
	tail -n 40 "$LOG"
	[ "$F" = 0 ] && F=1
fi
cleanup
mark "total" "$T0"
echo "$P passed, $F failed"
[ "$F" = 0 ]
