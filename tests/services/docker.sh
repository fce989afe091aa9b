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
now_ms() { date +%s%3N; }

install_docker() {
	local cmd="apt-get install -y --no-install-recommends docker.io"

	command -v dockerd >/dev/null 2>&1 && return 0
	if [ "$(id -u)" -ne 0 ]; then
		say "dockerd is not installed; as root run:"
		say "  apt-get update && DEBIAN_FRONTEND=noninteractive $cmd"
		exit 1
	fi
	say "installing docker.io"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
	$cmd -o DPkg::Lock::Timeout=300 -qq >&2 || die "apt-get install docker.io failed"
}

engine_up() { docker info >/dev/null 2>&1; }

start_dockerd() {
	local t0

	engine_up && return 0
	if [ "$(id -u)" -ne 0 ]; then
		[ -S /var/run/docker.sock ] &&
		    die "cannot use /var/run/docker.sock (not in group docker?)"
		die "dockerd is not running and only root can start it"
	fi
	if pgrep -x dockerd >/dev/null 2>&1; then
		say "dockerd is running but not answering yet; waiting"
	else
		say "starting dockerd (log: $LOG)"
		mkdir -p "$(dirname "$LOG")"
		DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid dockerd >>"$LOG" 2>&1 </dev/null &
	fi
	t0=$(now_ms)
	for _ in $(seq 1 600); do
		engine_up && break
		sleep 0.1
	done
	engine_up || die "dockerd did not answer within 60 s; see $LOG"
	say "dockerd ready in $(( $(now_ms) - t0 )) ms"
}

init_swarm() {
	local state ctl t0

	state=$(docker info --format '{{.Swarm.LocalNodeState}}')
	ctl=$(docker info --format '{{.Swarm.ControlAvailable}}')
	case $state in
	active)
		[ "$ctl" = true ] ||
		    die "this engine is a swarm worker, not a manager"
		return 0 ;;
	inactive) ;;
	*) die "swarm state is '$state'; fix it by hand (docker swarm leave --force?)" ;;
	esac
	t0=$(now_ms)
	docker swarm init --advertise-addr 127.0.0.1 >/dev/null ||
	    die "docker swarm init failed"
	say "swarm initialised in $(( $(now_ms) - t0 )) ms"
}

make_network() {	# NET
	local info

	if info=$(docker network inspect "$1" \
	    --format '{{.Driver}} {{.Attachable}} {{.Scope}}' 2>/dev/null); then
		[ "$info" = "overlay true swarm" ] ||
		    die "network '$1' exists but is '$info', not an attachable overlay"
		return 0
	fi
	docker network create --driver overlay --attachable \
	    --label swarmhub.test=1 "$1" >/dev/null ||
	    die "could not create network '$1'"
	say "created overlay network $1"
}

do_start() {	# [NET]
	local net=${1:-$NET_DEFAULT}

	install_docker
	start_dockerd
	init_swarm
	make_network "$net"
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
