#!/bin/bash
# up.sh - build the images, make missing secrets, deploy the swarmhub stack
# and wait until the hub is healthy (`make up`).
#
# Environment (all optional):
#   SWARMHUB_STACK            stack name                       swarmhub
#   SWARMHUB_ENV_FILE         the hub's settings  compose/swarmhub.env (copied
#                             from compose/swarmhub.env.example when missing)
#   SWARMHUB_SECRETS_DIR      secret files (dir mode 0700)    compose/secrets
#   SWARMHUB_PROFILES_FILE    profiles JSON    compose/profiles.json (a small
#                             one using swarmhub/notebook is written if missing)
#   SWARMHUB_HUB_IMAGE, SWARMHUB_PROXY_IMAGE, SWARMHUB_DB_IMAGE
#                             use these images instead of building
#                             swarmhub/hub:latest, swarmhub/nginx:latest,
#                             swarmhub/postgres:15
#   SWARMHUB_BUILD=0          build nothing (images must exist on the nodes)
#   SWARMHUB_HTTPS_PORT=443 SWARMHUB_HTTP_PORT=80
#   SWARMHUB_HUB_PORT         unset: the hub's own plain-HTTP port is not
#                             published (nginx's TLS only; the admin CLI runs
#                             through docker exec). A port number publishes
#                             it (compose/hub-port.yml is added); required
#                             with SWARMHUB_PROXY_REPLICAS=0. Firewall it.
#   SWARMHUB_PROXY_REPLICAS=1 SWARMHUB_NETWORK_NAME=swarmhub-users
#   SWARMHUB_USERS_SUBNET=10.250.0.0/20  the users' network (about 4000 tasks)
#   SWARMHUB_COMPOSE_EXTRA    more compose files (space separated) merged
#                             after compose/docker-compose.yml
#   SWARMHUB_UP_TIMEOUT=240   seconds to wait for a healthy hub
#   SWARMHUB_DOCKER_SOCKET=/var/run/docker.sock  the Docker socket on the
#                             managers, bind-mounted into the hub
#   SWARMHUB_DB_NODE_LABEL=swarmhub.db  the database runs on the node with
#                             this label set to true: on a one-node swarm
#                             up.sh sets it; with more nodes label the node
#                             that keeps the data (else up.sh stops, saying so)
#   SWARMHUB_UP_ADDR          where up.sh checks the hub's health; default
#                             127.0.0.1 for the local engine, else the
#                             address of the node running nginx (or the hub)
# DOCKER_HOST may name the Engine API of a manager elsewhere (then the
# images must already be on the nodes, or built there: docker build runs on
# that engine). A SWARMHUB_HOME in the env file that is a directory
# (homes on a filesystem every node has at that path) is mounted into the
# hub at the same path (compose/homes.yml).
# Secrets made when missing: db_password, hub_secret, admin_token (random),
# ldap_bind_password (put the real one there before the first `make up`),
# tls_cert + tls_key (self-signed for localhost, 127.0.0.1 and this host).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf 'up: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s; }
T0=$(now)

export SWARMHUB_STACK=${SWARMHUB_STACK:-swarmhub}
SWARMHUB_ENV_FILE=$(realpath -m "${SWARMHUB_ENV_FILE:-compose/swarmhub.env}")
SWARMHUB_SECRETS_DIR=$(realpath -m "${SWARMHUB_SECRETS_DIR:-compose/secrets}")
SWARMHUB_PROFILES_FILE=$(realpath -m "${SWARMHUB_PROFILES_FILE:-compose/profiles.json}")
export SWARMHUB_ENV_FILE SWARMHUB_SECRETS_DIR SWARMHUB_PROFILES_FILE
export SWARMHUB_HTTPS_PORT=${SWARMHUB_HTTPS_PORT:-443}
export SWARMHUB_HTTP_PORT=${SWARMHUB_HTTP_PORT:-80}
export SWARMHUB_PROXY_REPLICAS=${SWARMHUB_PROXY_REPLICAS:-1}
HUB_PORT=${SWARMHUB_HUB_PORT:-}
case $HUB_PORT in
"") [ "$SWARMHUB_PROXY_REPLICAS" != 0 ] ||
	die "SWARMHUB_PROXY_REPLICAS=0 leaves nothing in front of the hub: set SWARMHUB_HUB_PORT to publish its port" ;;
*[!0-9]*) die "SWARMHUB_HUB_PORT='$HUB_PORT' is not a port number" ;;
*) export SWARMHUB_HUB_PORT ;;
esac
export SWARMHUB_NETWORK_NAME=${SWARMHUB_NETWORK_NAME:-swarmhub-users}
export SWARMHUB_USERS_SUBNET=${SWARMHUB_USERS_SUBNET:-10.250.0.0/20}
export SWARMHUB_DOCKER_SOCKET=${SWARMHUB_DOCKER_SOCKET:-/var/run/docker.sock}
export SWARMHUB_DB_NODE_LABEL=${SWARMHUB_DB_NODE_LABEL:-swarmhub.db}
case $SWARMHUB_DB_NODE_LABEL in
""|*[!A-Za-z0-9._-]*) die "SWARMHUB_DB_NODE_LABEL='$SWARMHUB_DB_NODE_LABEL' is not a node label name (letters, digits, . _ -)" ;;
esac
case $SWARMHUB_DOCKER_SOCKET in
/*) ;; *) die "SWARMHUB_DOCKER_SOCKET='$SWARMHUB_DOCKER_SOCKET' is not an absolute path" ;;
esac
# the engine is on this machine (a unix socket): its files are ours to check
LOCAL_ENGINE=0
case ${DOCKER_HOST:-unix://} in unix://*) LOCAL_ENGINE=1 ;; esac
BUILD=${SWARMHUB_BUILD:-1}
TIMEOUT=${SWARMHUB_UP_TIMEOUT:-240}

# ---- Docker and the swarm ---------------------------------------------------
docker info >/dev/null 2>&1 || die "docker does not answer (is dockerd running? are you in group docker?)"
state=$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')
case $state in
"active true") ;;
"active false") die "this node is a swarm worker: run make up on a manager" ;;
inactive*)
	say "this engine is not in a swarm: docker swarm init"
	docker swarm init >/dev/null 2>&1 ||
	    docker swarm init --advertise-addr 127.0.0.1 >/dev/null ||
	    die "docker swarm init failed; run it by hand (--advertise-addr ADDR)" ;;
*) die "swarm state '$state'" ;;
esac
if [ "$LOCAL_ENGINE" = 1 ] && [ -z "${DOCKER_HOST:-}" ] && [ ! -S "$SWARMHUB_DOCKER_SOCKET" ]; then
	die "SWARMHUB_DOCKER_SOCKET=$SWARMHUB_DOCKER_SOCKET is not a socket on this manager"
fi

# ---- the database's node ---------------------------------------------------------
# its volume is local to one node: it runs where SWARMHUB_DB_NODE_LABEL=true
db_nodes=$(docker node ls -q | xargs docker node inspect \
    -f "{{.ID}} {{.Description.Hostname}} {{index .Spec.Labels \"$SWARMHUB_DB_NODE_LABEL\"}}")
labelled=$(echo "$db_nodes" | awk '$3 == "true" { print $2 }')
if [ -z "$labelled" ] && [ "$(echo "$db_nodes" | wc -l)" = 1 ]; then
	docker node update --label-add "$SWARMHUB_DB_NODE_LABEL=true" \
	    "$(echo "$db_nodes" | awk '{ print $1 }')" >/dev/null ||
	    die "docker node update --label-add $SWARMHUB_DB_NODE_LABEL=true failed"
	say "labelled this swarm's one node $SWARMHUB_DB_NODE_LABEL=true (the database's node)"
elif [ -z "$labelled" ]; then
	die "no node has the label $SWARMHUB_DB_NODE_LABEL=true: the database keeps" \
	    "its data on one node; choose it: docker node update --label-add" \
	    "$SWARMHUB_DB_NODE_LABEL=true NODE (nodes: $(echo "$db_nodes" | awk '{ print $2 }' | tr '\n' ' '))"
elif [ "$(echo "$labelled" | wc -l)" -gt 1 ]; then
	say "warning: several nodes have $SWARMHUB_DB_NODE_LABEL=true ($(echo $labelled)):" \
	    "if the database moves between them it starts on an empty volume"
fi

# ---- images ---------------------------------------------------------------------
build() {	# TAG CONTEXT-ARGS...
	local tag=$1 t; shift
	t=$(now)
	say "building $tag"
	docker build -q -t "$tag" "$@" >/dev/null 2>"$SWARMHUB_SECRETS_DIR/.build.log" ||
	    { tail -n 30 "$SWARMHUB_SECRETS_DIR/.build.log" >&2; die "docker build $tag failed"; }
	say "built $tag in $(( $(now) - t )) s ($(docker image inspect -f '{{.Size}}' "$tag" |
	    awk '{printf "%.1f MB", $1/1e6}'))"
}
mkdir -p "$SWARMHUB_SECRETS_DIR"
chmod 700 "$SWARMHUB_SECRETS_DIR"
if [ "$BUILD" != 0 ]; then
	if ! docker image inspect debian:bookworm >/dev/null 2>&1 ||
	   ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
		say "debian:bookworm is missing: images/build-base.sh (debootstrap, a few minutes)"
		images/build-base.sh >/dev/null
	fi
	if [ -z "${SWARMHUB_HUB_IMAGE:-}" ]; then
		t=$(now); say "building swarmhub/hub:latest"
		tar -c Makefile common spawner culler edge hub images/hub |
		    docker build -q -t swarmhub/hub:latest -f images/hub/Dockerfile - \
		    >/dev/null 2>"$SWARMHUB_SECRETS_DIR/.build.log" ||
		    { tail -n 30 "$SWARMHUB_SECRETS_DIR/.build.log" >&2; die "docker build swarmhub/hub failed"; }
		say "built swarmhub/hub:latest in $(( $(now) - t )) s ($(docker image inspect \
		    -f '{{.Size}}' swarmhub/hub:latest | awk '{printf "%.1f MB", $1/1e6}'))"
	fi
	[ -n "${SWARMHUB_PROXY_IMAGE:-}" ] || build swarmhub/nginx:latest images/nginx
	[ -n "${SWARMHUB_DB_IMAGE:-}" ] || build swarmhub/postgres:15 images/postgres
	docker image inspect swarmhub/notebook:latest >/dev/null 2>&1 ||
	    build swarmhub/notebook:latest images/notebook
fi
export SWARMHUB_HUB_IMAGE=${SWARMHUB_HUB_IMAGE:-swarmhub/hub:latest}
export SWARMHUB_PROXY_IMAGE=${SWARMHUB_PROXY_IMAGE:-swarmhub/nginx:latest}
export SWARMHUB_DB_IMAGE=${SWARMHUB_DB_IMAGE:-swarmhub/postgres:15}

# ---- settings, profiles, secrets --------------------------------------------------
if [ ! -f "$SWARMHUB_ENV_FILE" ]; then
	cp compose/swarmhub.env.example "$SWARMHUB_ENV_FILE"
	say "wrote $SWARMHUB_ENV_FILE from compose/swarmhub.env.example (local accounts; edit it)"
fi
if [ ! -f "$SWARMHUB_PROFILES_FILE" ]; then
	cp compose/profiles.default.json "$SWARMHUB_PROFILES_FILE"
	say "wrote $SWARMHUB_PROFILES_FILE from compose/profiles.default.json (see compose/profiles.example.json)"
fi
secret() {	# NAME COMMAND...: make SECRETS_DIR/NAME with the command's output
	local f="$SWARMHUB_SECRETS_DIR/$1"; shift
	[ -s "$f" ] && return 0
	(umask 077; "$@" >"$f")
	say "generated secret $(basename "$f")"
}
secret db_password openssl rand -hex 24
secret hub_secret openssl rand -hex 32
secret admin_token openssl rand -hex 32
secret ldap_bind_password echo unused
if [ ! -s "$SWARMHUB_SECRETS_DIR/tls_cert" ] || [ ! -s "$SWARMHUB_SECRETS_DIR/tls_key" ]; then
	h=$(hostname -f 2>/dev/null || hostname)
	(umask 077; openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$h" \
	    -addext "subjectAltName=DNS:$h,DNS:localhost,IP:127.0.0.1" \
	    -keyout "$SWARMHUB_SECRETS_DIR/tls_key" -out "$SWARMHUB_SECRETS_DIR/tls_cert" 2>/dev/null) ||
	    die "openssl req failed"
	say "generated a self-signed TLS certificate for $h (replace tls_cert/tls_key with real ones)"
fi
chmod 600 "$SWARMHUB_SECRETS_DIR"/*
# Configs and secrets are immutable: a content change gets a new name.
SWARMHUB_CONFIG_VERSION=$(cat "$SWARMHUB_SECRETS_DIR"/{db_password,hub_secret,admin_token,ldap_bind_password,tls_cert,tls_key} \
    "$SWARMHUB_PROFILES_FILE" compose/nginx.conf | sha256sum | cut -c1-10)
export SWARMHUB_CONFIG_VERSION

# ---- homes in a local directory ------------------------------------------------------
home=$(sed -n 's/^SWARMHUB_HOME=//p' "$SWARMHUB_ENV_FILE" | tail -n 1)
case $home in
/*)
	[ "$LOCAL_ENGINE" = 0 ] || [ -d "$home" ] ||
	    die "SWARMHUB_HOME=$home (in $SWARMHUB_ENV_FILE) is not a directory: make it" \
	        "(on every node, the same shared filesystem at that path)"
	export SWARMHUB_HOMES_DIR=$home ;;
esac

# ---- deploy --------------------------------------------------------------------------
files=(-c compose/docker-compose.yml)
# the hub makes the users' directories in a local HOME: it needs the directory
[ -z "${SWARMHUB_HOMES_DIR:-}" ] || files+=(-c compose/homes.yml)
# the hub's own port only on request (see compose/hub-port.yml)
[ -z "$HUB_PORT" ] || files+=(-c compose/hub-port.yml)
for f in ${SWARMHUB_COMPOSE_EXTRA:-}; do files+=(-c "$f"); done
say "docker stack deploy ${files[*]} $SWARMHUB_STACK (hub $SWARMHUB_HUB_IMAGE," \
    "db $SWARMHUB_DB_IMAGE, https port $SWARMHUB_HTTPS_PORT, hub port ${HUB_PORT:-not published})"
for _ in $(seq 1 30); do	# a network of a just-removed stack may linger
	out=$(docker stack deploy --resolve-image never "${files[@]}" "$SWARMHUB_STACK" 2>&1) && break
	case $out in
	*"network"*"not found"*|*"is already in use"*|*"has active endpoints"*|*"Cannot"*"network"*)
		say "waiting for the old network to go: ${out##*$'\n'}"; sleep 2 ;;
	*) echo "$out" >&2; die "docker stack deploy failed" ;;
	esac
done

# ---- wait until healthy -----------------------------------------------------------------
# reached the way users reach it: through nginx (any certificate: this only
# asks whether the hub answers), or on its own port when there is no nginx
# (a remote engine: at the address of the node running nginx or the hub, as
# host-mode ports bind there)
front=proxy; [ "$SWARMHUB_PROXY_REPLICAS" != 0 ] || front=hub
front_addr() {	# the address users reach: SWARMHUB_UP_ADDR, 127.0.0.1 or the node's
	local node
	if [ -n "${SWARMHUB_UP_ADDR:-}" ]; then echo "$SWARMHUB_UP_ADDR"; return; fi
	if [ -z "${DOCKER_HOST:-}" ]; then echo 127.0.0.1; return; fi
	node=$(docker service ps -f desired-state=running --format '{{.Node}}' \
	    "${SWARMHUB_STACK}_$front" 2>/dev/null | head -n 1)
	[ -n "$node" ] && docker node inspect -f '{{.Status.Addr}}' "$node" 2>/dev/null
}
health_url() {
	if [ "$SWARMHUB_PROXY_REPLICAS" != 0 ]; then
		echo "https://$(front_addr):$SWARMHUB_HTTPS_PORT/hub/health"
	else
		echo "http://$(front_addr):$HUB_PORT/hub/health"
	fi
}
say "waiting for the hub (up to $TIMEOUT s): $(health_url)"
deadline=$(( $(now) + TIMEOUT )); last=""
current_hub() {	# true when a task of this version runs, is healthy and answers
	local task state cfg c h
	task=$(docker service ps -q --filter desired-state=running "${SWARMHUB_STACK}_hub" 2>/dev/null | head -n 1)
	[ -n "$task" ] || return 1
	state=$(docker inspect -f '{{.Status.State}}' "$task" 2>/dev/null)
	cfg=$(docker inspect -f '{{range .Spec.ContainerSpec.Configs}}{{.ConfigName}} {{end}}' "$task" 2>/dev/null)
	[ "$state" = running ] && [[ $cfg == *"_$SWARMHUB_CONFIG_VERSION"* ]] || return 1
	c=$(docker inspect -f '{{.Status.ContainerStatus.ContainerID}}' "$task" 2>/dev/null)
	# the container's health where this engine sees it (the hub may run on
	# another manager: then the answer below is all there is)
	if h=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c" 2>/dev/null); then
		[ "$h" = healthy ] || return 1
	fi
	[ "$(curl -ks -o /dev/null -w '%{http_code}' --noproxy '*' -m 3 \
	    "$(health_url)" 2>/dev/null)" = 200 ]
}
while ! current_hub; do
	line=$(docker stack ps "$SWARMHUB_STACK" --filter desired-state=running \
	    --format '{{.Name}}={{.CurrentState}}{{if .Error}} ({{.Error}}){{end}}' 2>/dev/null |
	    sed -E "s/^${SWARMHUB_STACK}_//; s/\.[0-9]+=/=/; s/ (about |less than )?[0-9a-z ]+ ago//I" |
	    sort | tr '\n' ' ')
	[ "$line" != "$last" ] && say "  $line"; last=$line
	if [ "$(now)" -ge "$deadline" ]; then
		docker service logs --tail 30 "${SWARMHUB_STACK}_hub" >&2 2>&1 || true
		die "the hub is not healthy after $TIMEOUT s (logs above; docker stack ps $SWARMHUB_STACK)"
	fi
	sleep 2
done
# configs/secrets of earlier versions that nothing uses any more
for kind in config secret; do
	docker $kind ls --filter "label=com.docker.stack.namespace=$SWARMHUB_STACK" \
	    --format '{{.Name}}' | grep -v "_${SWARMHUB_CONFIG_VERSION}\$" |
	    xargs -r docker $kind rm >/dev/null 2>&1 || true
done
hubc=$(docker ps -q --filter "label=com.docker.swarm.service.name=${SWARMHUB_STACK}_hub" | head -n 1)
auth=$(sed -n 's/^SWARMHUB_AUTH=//p' "$SWARMHUB_ENV_FILE" | tail -n 1)
if [ "${auth:-local}" = local ] && [ ! -s "$SWARMHUB_SECRETS_DIR/admin_password" ]; then
	(umask 077; openssl rand -base64 12 >"$SWARMHUB_SECRETS_DIR/admin_password")
	# through the running hub's API (it caches users in memory)
	ctl() { docker exec -i "$hubc" sh -c 'SWARMHUB_TOKEN=$(cat /run/secrets/admin_token) exec swarmhubctl "$@"' ctl "$@"; }
	if ! ctl users add admin --admin --password-stdin <"$SWARMHUB_SECRETS_DIR/admin_password" >/dev/null 2>&1; then
		# it exists already (a kept database): new password, admin rights
		ctl users set-password admin <"$SWARMHUB_SECRETS_DIR/admin_password" >/dev/null &&
		    ctl users set-admin admin on >/dev/null ||
		    { rm -f "$SWARMHUB_SECRETS_DIR/admin_password"; die "could not create the local account admin"; }
	fi
	say "created the local admin account: admin / $(cat "$SWARMHUB_SECRETS_DIR/admin_password")" \
	    "(kept in $SWARMHUB_SECRETS_DIR/admin_password)"
fi
bind_root=$(sed -n 's/^SWARMHUB_HOME_BIND_ROOT=//p' "$SWARMHUB_ENV_FILE" | tail -n 1)
if [ -z "$home$bind_root" ]; then
	say "SWARMHUB_HOME is empty in $SWARMHUB_ENV_FILE: servers get no home" \
	    "directory, so files are not kept when a server stops (the home page" \
	    "says so). For homes, see docs/deploy.md#homes"
fi
host=localhost; [ -z "${DOCKER_HOST:-}" ] || host=$(front_addr || true)
url="https://$host${SWARMHUB_HTTPS_PORT/#/:}"; url=${url%:443}
[ "$SWARMHUB_PROXY_REPLICAS" = 0 ] && url="http://$(front_addr || true):$HUB_PORT"
say "the hub is healthy after $(( $(now) - T0 )) s: $url/hub/login"
say "admin CLI: docker exec \$(docker ps -q -f label=com.docker.swarm.service.name=${SWARMHUB_STACK}_hub) sh -c 'SWARMHUB_TOKEN=\$(cat /run/secrets/admin_token) swarmhubctl users list'"
if [ -n "$HUB_PORT" ]; then
	say "  or (hub port $HUB_PORT published; firewall it): SWARMHUB_URL=http://$(front_addr):$HUB_PORT bin/swarmhubctl --token-file $SWARMHUB_SECRETS_DIR/admin_token users list"
fi
