#!/bin/bash
# run-docker.sh - spawning for `make run` on this one machine, and its undo.
#
#   run-docker.sh setup DIR   install docker.io if missing (apt, root),
#                             start dockerd if it does not answer, a one-node
#                             swarm if the engine is in none (advertise
#                             127.0.0.1), the attachable overlay network
#                             $SWARMHUB_RUN_NETWORK (swarmhub-dev), the
#                             notebook image swarmhub/notebook:latest (built
#                             offline from the Debian mirror when missing:
#                             images/build-base.sh, a few minutes the first
#                             time), DIR/homes and DIR/profiles.json. Prints
#                             the hub's settings (KEY=value lines) on stdout,
#                             what it did on stderr, and records what it
#                             created in DIR/created.
#   run-docker.sh undo DIR    removes what DIR/created lists, and nothing
#                             else: the services of that hub id, the
#                             network, the images it built, the swarm (only
#                             when setup made it and no other service is on
#                             it), dockerd (only when setup started it).
# Exit status 1 when spawning cannot be set up (the reason on stderr).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "run: $*" >&2; }
die() { say "$*"; exit 1; }
# shellcheck source=docker-lib.sh
. "$ROOT/scripts/docker-lib.sh"

NET=${SWARMHUB_RUN_NETWORK:-swarmhub-dev}
HUB_ID=${SWARMHUB_HUB_ID:-swarmhub-dev}
IMAGE=swarmhub/notebook:latest

profiles() {	# FILE: one notebook image for everyone (as make up writes it)
	cp "$ROOT/compose/profiles.default.json" "$1"
}

images() {	# DIR: the notebook image, and the Debian base it needs
	local t

	docker image inspect "$IMAGE" >/dev/null 2>&1 && return 0
	t=$(date +%s)
	if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
		say "building the Debian base image offline (images/build-base.sh, a few minutes)"
		"$ROOT/images/build-base.sh" >/dev/null 2>>"$1/build.log" ||
		    die "images/build-base.sh failed (see $1/build.log)"
		echo "image swarmhub/debian:bookworm" >>"$1/created"
	fi
	say "building $IMAGE (images/notebook)"
	docker build -q -t "$IMAGE" "$ROOT/images/notebook" >/dev/null \
	    2>>"$1/build.log" || die "docker build $IMAGE failed (see $1/build.log)"
	echo "image $IMAGE" >>"$1/created"
	say "built the images in $(( $(date +%s) - t )) s"
}

do_setup() {	# DIR
	local dir=$1

	mkdir -p "$dir"
	touch "$dir/created"
	docker_install || die "no Docker"
	docker_start_engine || die "dockerd does not answer"
	[ -z "$DOCKER_LIB_STARTED" ] || echo "dockerd $DOCKER_LIB_STARTED" >>"$dir/created"
	docker_init_swarm || die "no swarm"
	[ -z "$DOCKER_LIB_SWARM_MADE" ] || echo "swarm" >>"$dir/created"
	docker_make_network "$NET" swarmhub.run=1 || die "no network"
	[ -z "$DOCKER_LIB_NET_MADE" ] || echo "network $NET" >>"$dir/created"
	grep -qx "hub $HUB_ID" "$dir/created" || echo "hub $HUB_ID" >>"$dir/created"
	images "$dir"
	mkdir -p "$dir/homes"
	chmod 755 "$dir/homes"
	[ -s "$dir/profiles.json" ] || profiles "$dir/profiles.json"
	say "spawning on this machine's swarm: dockerd ${DOCKER_LIB_STARTED:+started by make run}${DOCKER_LIB_STARTED:-already running}," \
	    "swarm ${DOCKER_LIB_SWARM_MADE:+made by make run}${DOCKER_LIB_SWARM_MADE:-already there (kept by make run-clean)}," \
	    "network $NET${DOCKER_LIB_NET_MADE:+ (made)}, image $IMAGE, homes in $dir/homes," \
	    "profiles in $dir/profiles.json, CONNECT=gwbridge"
	echo "SWARMHUB_NETWORK=$NET"
	echo "SWARMHUB_CONNECT=gwbridge"
	echo "SWARMHUB_HOME=$dir/homes"
	echo "SWARMHUB_PROFILES=$dir/profiles.json"
	echo "SWARMHUB_HUB_ID=$HUB_ID"
	echo "SWARMHUB_SERVICE_NAME_TEMPLATE=$HUB_ID-{user}"
}

remove_services() {	# HUB_ID
	local names

	names=$(docker service ls --filter "label=swarmhub.hub=$1" --format '{{.Name}}')
	[ -n "$names" ] || return 0
	say "removing services: $(echo "$names" | tr '\n' ' ')"
	# shellcheck disable=SC2086
	docker service rm $names >/dev/null
	for _ in $(seq 1 60); do
		[ -z "$(docker ps -aq --filter "label=swarmhub.hub=$1")" ] && return 0
		sleep 0.5
	done
	say "warning: containers of hub $1 still present after 30 s"
}

remove_network() {	# NET: swarm removes networks lazily
	for _ in $(seq 1 60); do
		docker network inspect "$1" >/dev/null 2>&1 || return 0
		docker network rm "$1" >/dev/null 2>&1 && { say "removed network $1"; return 0; }
		sleep 0.5
	done
	say "warning: could not remove network $1 (containers still attached?)"
}

do_undo() {	# DIR
	local f=$1/created kind arg

	[ -f "$f" ] || { say "nothing recorded in $f: nothing to undo"; return 0; }
	docker_engine_up || { say "dockerd does not answer: Docker left as it is"; return 0; }
	while read -r kind arg; do
		[ "$kind" = hub ] && remove_services "$arg"
	done <"$f"
	while read -r kind arg; do
		[ "$kind" = network ] && remove_network "$arg"
	done <"$f"
	tac "$f" | while read -r kind arg; do
		[ "$kind" = image ] || continue
		docker image rm "$arg" >/dev/null 2>&1 &&
		    say "removed image $arg" || say "warning: image $arg kept (in use?)"
	done
	if grep -qx swarm "$f"; then
		if [ -n "$(docker service ls -q)" ]; then
			say "the swarm make run made has other services now: left as it is"
		else
			docker swarm leave --force >/dev/null && say "left the swarm make run made"
		fi
	fi
	arg=$(sed -n 's/^dockerd //p' "$f")
	if [ -n "$arg" ] && [ "$(cat "/proc/$arg/comm" 2>/dev/null)" = dockerd ]; then
		kill "$arg" && say "stopped dockerd (pid $arg), which make run started"
	fi
	rm -f "$f"
}

[ $# -eq 2 ] || die "usage: run-docker.sh setup|undo DIR"
case $1 in
setup) do_setup "$2" ;;
undo) do_undo "$2" ;;
*) die "usage: run-docker.sh setup|undo DIR" ;;
esac
