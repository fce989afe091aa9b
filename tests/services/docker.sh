#!/bin/bash
#
# docker.sh - the Docker Engine + single-node swarm that swarmhub's tests use.
#
#   docker.sh start [NET]       install docker.io if missing, start dockerd if
#                               it does not answer, init a one-node swarm if
#                               this engine is not a manager yet, create the
#                               attachable overlay network NET (default
#                               swarmhub-test) if missing; prints
#                               SWARMHUB_TEST_DOCKER_NETWORK=NET
#   docker.sh cleanup VALUE     remove every service labelled
#                               swarmhub.hub=VALUE and wait (up to 30 s) for
#                               their containers to go
#   docker.sh stop [NET]        remove the network NET (default swarmhub-test)
#
# dockerd and the swarm are shared machine state: nothing here ever stops
# dockerd or leaves the swarm. dockerd runs detached (setsid) with its log in
# $SWARMHUB_DOCKERD_LOG (default /var/log/swarmhub-dockerd.log). Default
# dockerd flags work on this machine (see docs INFRA.md section 4).
# stdout carries only the SWARMHUB_TEST_* line; progress goes to stderr.
set -eu

LOG=${SWARMHUB_DOCKERD_LOG:-/var/log/swarmhub-dockerd.log}
NET_DEFAULT=swarmhub-test

say() { echo "docker.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { die "usage: docker.sh start [NET] | stop [NET] | cleanup LABELVALUE"; }

# the engine and swarm logic is shared with `make run`
# shellcheck source=../../scripts/docker-lib.sh
DOCKER_LIB_LOG=$LOG
. "$(dirname "$0")/../../scripts/docker-lib.sh"
engine_up() { docker_engine_up; }

do_start() {	# [NET]
	local net=${1:-$NET_DEFAULT}

	docker_install || exit 1
	docker_start_engine || exit 1
	docker_init_swarm || exit 1
	docker_make_network "$net" swarmhub.test=1 || exit 1
	echo "SWARMHUB_TEST_DOCKER_NETWORK=$net"
}

do_stop() {	# [NET]: swarm removes networks lazily; retry up to 30 s
	local net=${1:-$NET_DEFAULT}

	engine_up || { say "dockerd is not running; nothing to do"; return 0; }
	for _ in $(seq 1 60); do
		docker network inspect "$net" >/dev/null 2>&1 || return 0
		if docker network rm "$net" >/dev/null 2>&1; then
			say "removed network $net"
			return 0
		fi
		sleep 0.5
	done
	docker network inspect "$net" >/dev/null 2>&1 || return 0
	die "could not remove network '$net' (containers still attached?)"
}

left() {	# NAMES: how many containers of these services remain
	local name n=0

	for name in $1; do
		n=$((n + $(docker ps -aq \
		    --filter "label=com.docker.swarm.service.name=$name" | wc -l)))
	done
	echo "$n"
}

do_cleanup() {	# LABELVALUE
	local names

	engine_up || { say "dockerd is not running; nothing to do"; return 0; }
	names=$(docker service ls --filter "label=swarmhub.hub=$1" \
	    --format '{{.Name}}')
	[ -n "$names" ] || return 0
	say "removing services: $(echo "$names" | tr "\n" " ")"
	# shellcheck disable=SC2086
	docker service rm $names >/dev/null
	for _ in $(seq 1 60); do
		[ "$(left "$names")" -eq 0 ] && return 0
		sleep 0.5
	done
	say "warning: containers of removed services still present after 30 s"
}

[ $# -ge 1 ] || usage
case $1 in
start) [ $# -le 2 ] || usage; do_start "${2:-}" ;;
stop) [ $# -le 2 ] || usage; do_stop "${2:-}" ;;
cleanup) { [ $# -eq 2 ] && [ -n "$2" ]; } || usage; do_cleanup "$2" ;;
*) usage ;;
esac
