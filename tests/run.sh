#!/bin/bash
# tests/run.sh [unit] [integration] [e2e] [all] - run swarmhub's tests.
#
# Starts a throwaway PostgreSQL and slapd on free loopback ports in a fresh
# temporary directory, runs the C unit tests, the C integration tests and
# the Python (pytest) integration tests against them, stops the services
# (also on failure or Ctrl-C), and ends with one line "N passed, N failed".
#
# Environment:
#   SWARMHUB_BUILD=build        build directory holding tests/ binaries
#   SWARMHUB_BIN_DIR=bin        where swarmhub and swarmhubctl are
#   SWARMHUB_VALGRIND=1         run C tests under valgrind (fail on reports)
#   SWARMHUB_TEST_SKIP=ldap,... skip tests needing these services (counted)
#   SWARMHUB_TEST_OUT=DIR       where tests keep output (screenshots, logs)
#   SWARMHUB_TEST_CLUSTER_EARLY 1: make the multi-node test swarm in the
#                               background at the start (default when the
#                               whole pytest suite runs); 0: the first
#                               cluster suite makes it
#
# Wall time on two cores: the 3-node test swarm of the cluster suites (and
# the images it and the end-to-end stage need) is made in the background
# while the C tests and the other pytest suites run (conftest.py puts the
# cluster suites last); run.sh stops it at the end.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${SWARMHUB_BUILD:-build}
export SWARMHUB_BIN_DIR=${SWARMHUB_BIN_DIR:-$ROOT/bin}
export SWARMHUB_TEST_OUT=${SWARMHUB_TEST_OUT:-$ROOT/tests/out/run-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$SWARMHUB_TEST_OUT"
WORK=$(mktemp -d /tmp/swarmhub-test.XXXXXX)
chmod 755 "$WORK"
PASS=0 FAIL=0 SKIP=0
CLUSTER_PID=""

cleanup() {
	trap - EXIT INT TERM
	local sockdir=""

	[ -f "$WORK/pg/sockdir" ] && sockdir=$(cat "$WORK/pg/sockdir")
	[ -d "$WORK/pg" ] && tests/services/postgres.sh stop "$WORK/pg" >/dev/null 2>&1
	case $sockdir in /tmp/shpg.*) rm -rf "$sockdir" ;; esac	# outside WORK
	[ -d "$WORK/ldap" ] && tests/services/slapd.sh stop "$WORK/ldap" >/dev/null 2>&1
	[ -d "$WORK/nfs" ] && tests/services/nfs.sh stop "$WORK/nfs" >/dev/null 2>&1
	if [ -n "$CLUSTER_PID" ]; then
		kill -- -"$CLUSTER_PID" 2>/dev/null
		wait "$CLUSTER_PID" 2>/dev/null
		tests/services/cluster.sh stop >/dev/null 2>&1
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

want() { # want unit|integration
	for a in $ARGS; do [ "$a" = all ] || [ "$a" = "$1" ] && return 0; done
	return 1
}

skipped() { case ",${SWARMHUB_TEST_SKIP:-}," in *",$1,"*) return 0;; esac; return 1; }

# Adds the counts of the last "N passed, N failed[, N skipped]" line.
count() { # count LOGFILE RC NAME
	local line p f s
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "FAIL $3: no summary line (exit $2)"; FAIL=$((FAIL + 1)); return
	fi
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
	s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
	PASS=$((PASS + p)); FAIL=$((FAIL + f)); SKIP=$((SKIP + ${s:-0}))
	if [ "$2" != 0 ] && [ "$f" = 0 ]; then
		echo "FAIL $3: exit status $2"; FAIL=$((FAIL + 1))
	fi
	printf '%-28s %s\n' "$3" "$line"
}

run_c() { # run_c BINARY
	local name log rc
	name=$(basename "$1")
	log="$SWARMHUB_TEST_OUT/$name.log"
	if [ "${SWARMHUB_VALGRIND:-}" = 1 ]; then
		valgrind -q --error-exitcode=99 --leak-check=full \
		    --errors-for-leak-kinds=definite,indirect \
		    --show-leak-kinds=definite,indirect "$1" >"$log" 2>&1
	else
		"$1" >"$log" 2>&1
	fi
	rc=$?
	[ "$rc" != 0 ] && tail -n 30 "$log"
	count "$log" "$rc" "$name"
}

# The test images, each built FROM the debootstrap base (cached by Docker
# after the first run); the independent ones in parallel, as their time is
# mostly apt downloading and unpacking.
build_images() {
	local name pids="" ok=0

	images/build-base.sh >"$SWARMHUB_TEST_OUT/build-base.log" 2>&1 || return 1
	for name in test-notebook notebook test-shiny test-singleuser test-registry; do
		docker build -q -t "swarmhub/$name:latest" "images/$name" \
		    >"$SWARMHUB_TEST_OUT/build-$name.log" 2>&1 &
		pids="$pids $!"
	done
	for p in $pids; do wait "$p" || ok=1; done
	return $ok
}

# The multi-node swarm of the cluster suites, made in the background (its
# own session, so cleanup can end it): first the missing images it and the
# later stages use (hub, nginx, postgres; test-ldap, test-nfs for e2e), then
# `cluster.sh start 3` with the images clusterhub.py loads. The fixture's
# own `cluster.sh start 3` then waits for it (cluster.sh's lock) and reuses
# it; SWARMHUB_TEST_CLUSTER_KEEP=1 leaves stopping it to cleanup. A cluster
# that runs already (someone's) is left alone.
cluster_early() {
	local want=${SWARMHUB_TEST_CLUSTER_EARLY:-}
	[ -n "$want" ] || { [ -z "${SWARMHUB_TEST_PYTEST:-}" ] && want=1; }
	[ "$want" = 1 ] && [ "$(id -u)" = 0 ] || return 0
	tests/services/cluster.sh status >/dev/null 2>&1 && return 0
	export SWARMHUB_TEST_CLUSTER_KEEP=1
	echo "making the 3-node test swarm in the background..." >&2
	E2E=$(want e2e && ! skipped e2e && echo 1) setsid bash -c '
		t0=$(date +%s)
		img() { docker image inspect "$1" >/dev/null 2>&1 ||
		    docker build -q -t "$1" "${@:2}" >/dev/null || exit 1; }
		img swarmhub/hub:latest -f images/hub/Dockerfile .
		img swarmhub/nginx:latest images/nginx
		img swarmhub/postgres:15 images/postgres
		if [ -n "$E2E" ]; then
			img swarmhub/test-ldap:latest images/ldap
			img swarmhub/test-nfs:latest images/nfs
		fi
		echo "images ready after $(( $(date +%s) - t0 )) s"
		SWARMHUB_TEST_IMAGES="swarmhub/hub:latest swarmhub/test-notebook:latest" \
		    tests/services/cluster.sh start 3 || exit 1
		echo "cluster ready after $(( $(date +%s) - t0 )) s"' \
	    >"$SWARMHUB_TEST_OUT/cluster-early.log" 2>&1 </dev/null &
	CLUSTER_PID=$!
}

start_services() {
	local out
	if ! skipped postgres; then
		echo "starting PostgreSQL..." >&2
		out=$(tests/services/postgres.sh start "$WORK/pg") || {
			echo "FAIL: PostgreSQL did not start (tests/services/postgres.sh)"; exit 1; }
		export "$out"
		export SWARMHUB_TEST_PG_DIR="$WORK/pg"
	fi
	if ! skipped ldap; then
		echo "starting slapd..." >&2
		out=$(tests/services/slapd.sh start "$WORK/ldap") || {
			echo "FAIL: slapd did not start (tests/services/slapd.sh)"; exit 1; }
		while IFS= read -r l; do [ -n "$l" ] && export "$l"; done <<<"$out"
	fi
	if ! skipped nfs; then
		echo "starting nfs-ganesha..." >&2
		out=$(tests/services/nfs.sh start "$WORK/nfs") || {
			echo "FAIL: nfs-ganesha did not start (tests/services/nfs.sh)"; exit 1; }
		while IFS= read -r l; do [ -n "$l" ] && export "$l"; done <<<"$out"
	fi
	if ! skipped docker; then
		echo "starting dockerd and the swarm..." >&2
		out=$(tests/services/docker.sh start) || {
			echo "FAIL: Docker swarm did not start (tests/services/docker.sh)"; exit 1; }
		export "$out"
		echo "building the test images (cached after the first run)..." >&2
		build_images || {
			echo "FAIL: test images did not build (images/build-base.sh; logs in $SWARMHUB_TEST_OUT/build-*.log)"; exit 1; }
		cluster_early
	fi
}

run_pytest() {
	local log="$SWARMHUB_TEST_OUT/pytest.log" rc summary p f s e
	# SWARMHUB_TEST_PYTEST narrows the run while developing (pytest
	# arguments, e.g. "tests/integration/test_pages.py -k usage")
	# shellcheck disable=SC2086
	/usr/bin/python3 -m pytest -q -p no:cacheprovider \
	    ${SWARMHUB_TEST_PYTEST:-tests/integration} -o junit_family=xunit2 --junitxml="$SWARMHUB_TEST_OUT/pytest.xml" \
	    >"$log" 2>&1
	rc=$?
	summary=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$log" | tail -n 1)
	p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
	f=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
	e=$(echo "$summary" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
	s=$(echo "$summary" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+')
	PASS=$((PASS + ${p:-0})); FAIL=$((FAIL + ${f:-0} + ${e:-0}))
	SKIP=$((SKIP + ${s:-0}))
	if [ "$rc" != 0 ]; then
		grep -E '^(FAILED|ERROR)' "$log" | head -n 40
		tail -n 60 "$log"
		[ -z "$f$e" ] && FAIL=$((FAIL + 1))
	fi
	printf '%-28s %s\n' "pytest" "$summary"
}

ARGS=${*:-all}
if want unit; then
	for t in "$B"/tests/test_*; do
		[ -x "$t" ] || continue
		case "$(basename "$t")" in
		test_store|test_auth_ldap|test_ctl*) continue;;
		esac
		[ -f "tests/unit/$(basename "$t").c" ] && run_c "$t"
	done
fi
if want integration; then
	start_services
	for t in "$B"/tests/test_*; do
		[ -f "tests/integration/$(basename "$t").c" ] && run_c "$t"
	done
	run_pytest
fi
if want e2e && ! skipped e2e; then
	log="$SWARMHUB_TEST_OUT/e2e.log"
	echo "end-to-end: images, docker stack deploy, browser..." >&2
	tests/e2e/run.sh >"$log" 2>&1
	rc=$?
	[ "$rc" != 0 ] && tail -n 40 "$log"
	count "$log" "$rc" "e2e"
	# the default path: make up with the example env, as a newcomer
	log="$SWARMHUB_TEST_OUT/e2e-default.log"
	tests/e2e/default.sh >"$log" 2>&1
	rc=$?
	[ "$rc" != 0 ] && tail -n 40 "$log"
	count "$log" "$rc" "e2e default (example env)"
fi
if [ "$SKIP" != 0 ]; then
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
else
	echo "$PASS passed, $FAIL failed"
fi
[ "$FAIL" = 0 ]
