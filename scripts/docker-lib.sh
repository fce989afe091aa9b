# docker-lib.sh - sourced by scripts/run-docker.sh (`make run`) and
# tests/services/docker.sh: one machine's Docker Engine and one-node swarm.
#
#   docker_install        install docker.io with apt when dockerd is missing
#                         (root only; otherwise prints the apt-get line, fails)
#   docker_engine_up      true when the engine answers
#   docker_start_engine   start dockerd detached (setsid, log $DOCKER_LIB_LOG)
#                         if it does not answer; sets DOCKER_LIB_STARTED=PID
#   docker_init_swarm     a one-node swarm (advertise 127.0.0.1) when the
#                         engine is in none; sets DOCKER_LIB_SWARM_MADE=1
#   docker_make_network NET [LABEL=VALUE]
#                         an attachable overlay NET when missing; sets
#                         DOCKER_LIB_NET_MADE=1
# Nothing here stops dockerd or leaves a swarm. The caller defines say()
# and die() (progress and errors on stderr).
DOCKER_LIB_LOG=${DOCKER_LIB_LOG:-/var/log/swarmhub-dockerd.log}
DOCKER_LIB_STARTED=
DOCKER_LIB_SWARM_MADE=
DOCKER_LIB_NET_MADE=

docker_lib_ms() { date +%s%3N; }

docker_install() {
	local cmd="apt-get install -y --no-install-recommends docker.io"

	command -v dockerd >/dev/null 2>&1 && return 0
	if [ "$(id -u)" -ne 0 ]; then
		say "dockerd is not installed; as root run:"
		say "  apt-get update && DEBIAN_FRONTEND=noninteractive $cmd"
		return 1
	fi
	say "installing docker.io"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
	$cmd -o DPkg::Lock::Timeout=300 -qq >&2 ||
	    { say "apt-get install docker.io failed"; return 1; }
}

docker_engine_up() { docker info >/dev/null 2>&1; }

docker_start_engine() {
	local t0

	docker_engine_up && return 0
	if [ "$(id -u)" -ne 0 ]; then
		[ -S /var/run/docker.sock ] &&
		    { say "cannot use /var/run/docker.sock (not in group docker?)"; return 1; }
		say "dockerd is not running and only root can start it"
		return 1
	fi
	if pgrep -x dockerd >/dev/null 2>&1; then
		say "dockerd is running but not answering yet; waiting"
	else
		say "starting dockerd (log: $DOCKER_LIB_LOG)"
		mkdir -p "$(dirname "$DOCKER_LIB_LOG")"
		DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid dockerd \
		    >>"$DOCKER_LIB_LOG" 2>&1 </dev/null &
		DOCKER_LIB_STARTED=$!
	fi
	t0=$(docker_lib_ms)
	for _ in $(seq 1 600); do
		docker_engine_up && break
		sleep 0.1
	done
	docker_engine_up ||
	    { say "dockerd did not answer within 60 s; see $DOCKER_LIB_LOG"; return 1; }
	say "dockerd ready in $(( $(docker_lib_ms) - t0 )) ms"
}

docker_init_swarm() {
	local state ctl t0

	state=$(docker info --format '{{.Swarm.LocalNodeState}}')
	ctl=$(docker info --format '{{.Swarm.ControlAvailable}}')
	case $state in
	active)
		[ "$ctl" = true ] ||
		    { say "this engine is a swarm worker, not a manager"; return 1; }
		return 0 ;;
	inactive) ;;
	*) say "swarm state is '$state'; fix it by hand (docker swarm leave --force?)"
	   return 1 ;;
	esac
	t0=$(docker_lib_ms)
	docker swarm init --advertise-addr 127.0.0.1 >/dev/null ||
	    { say "docker swarm init failed"; return 1; }
	DOCKER_LIB_SWARM_MADE=1
	say "swarm initialised in $(( $(docker_lib_ms) - t0 )) ms"
}

docker_make_network() {	# NET [LABEL=VALUE]
	local info

	if info=$(docker network inspect "$1" \
	    --format '{{.Driver}} {{.Attachable}} {{.Scope}}' 2>/dev/null); then
		[ "$info" = "overlay true swarm" ] ||
		    { say "network '$1' exists but is '$info', not an attachable overlay"; return 1; }
		return 0
	fi
	docker network create --driver overlay --attachable \
	    ${2:+--label "$2"} "$1" >/dev/null ||
	    { say "could not create network '$1'"; return 1; }
	DOCKER_LIB_NET_MADE=1
	say "created overlay network $1"
}
