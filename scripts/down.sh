#!/bin/bash
# down.sh - remove the swarmhub stack (`make down`) and wait until it is gone.
#
#   scripts/down.sh [--purge]
#
# Stops the users' servers first (services labelled swarmhub.hub=<HUB_ID>,
# HUB_ID from the env file; SWARMHUB_KEEP_SERVERS=1 keeps them, and then the
# network stays too), then `docker stack rm`, then waits until the stack's
# services, containers and network are gone (Swarm frees a network some
# seconds after stack rm). --purge also deletes the database volume and the
# local secrets directory: everything, including every account and server
# record (homes on NFS are never touched). The database's volume is on the
# node labelled for it (SWARMHUB_DB_NODE_LABEL): when that is not the node of
# DOCKER_HOST, --purge says so and leaves it (remove it on that node).
# Environment: SWARMHUB_STACK (swarmhub), SWARMHUB_ENV_FILE
# (compose/swarmhub.env), SWARMHUB_SECRETS_DIR (compose/secrets),
# SWARMHUB_NETWORK_NAME (swarmhub-users), SWARMHUB_DOWN_TIMEOUT (90).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf 'down: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s; }
PURGE=0
case ${1:-} in
"") ;; --purge) PURGE=1 ;; *) die "usage: down.sh [--purge]" ;;
esac
STACK=${SWARMHUB_STACK:-swarmhub}
ENV_FILE=${SWARMHUB_ENV_FILE:-compose/swarmhub.env}
SECRETS=${SWARMHUB_SECRETS_DIR:-compose/secrets}
NET=${SWARMHUB_NETWORK_NAME:-swarmhub-users}
TIMEOUT=${SWARMHUB_DOWN_TIMEOUT:-90}
T0=$(now)
docker info >/dev/null 2>&1 || die "docker does not answer"
HUB_ID=swarmhub
[ -f "$ENV_FILE" ] && HUB_ID=$(sed -n 's/^SWARMHUB_HUB_ID=//p' "$ENV_FILE" | tail -n 1)
HUB_ID=${HUB_ID:-swarmhub}

users=""
if [ "${SWARMHUB_KEEP_SERVERS:-0}" != 1 ]; then
	users=$(docker service ls --filter "label=swarmhub.hub=$HUB_ID" --format '{{.Name}}')
	if [ -n "$users" ]; then
		say "removing the users' servers: $(echo $users)"
		echo "$users" | xargs docker service rm >/dev/null
	fi
fi
# the node holding the database's volume (a local volume lives on one node)
db_node=$(docker service ps -f desired-state=running --format '{{.Node}}' \
    "${STACK}_db" 2>/dev/null | head -n 1 || true)
if docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
	say "docker stack rm $STACK"
	docker stack rm "$STACK" >/dev/null
else
	say "no stack $STACK"
fi
deadline=$(( $(now) + TIMEOUT ))
gone() {
	[ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] || return 1
	for s in $users; do
		[ -z "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$s")" ] || return 1
	done
	if [ "${SWARMHUB_KEEP_SERVERS:-0}" != 1 ]; then
		! docker network inspect "$NET" >/dev/null 2>&1 || return 1
	fi
}
while ! gone; do
	if [ "$(now)" -ge "$deadline" ]; then
		die "still there after $TIMEOUT s: $(docker ps -a --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Names}}' | tr '\n' ' ') network $NET"
	fi
	say "  waiting: $(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK" | wc -l) containers;" \
	    "network $NET $(docker network inspect "$NET" >/dev/null 2>&1 && echo present || echo gone)"
	# swarm frees the network lazily; removing it by hand is harmless once empty
	docker network rm "$NET" >/dev/null 2>&1 || true
	sleep 2
done
if [ "$PURGE" = 1 ]; then
	for v in $(docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK"); do
		docker volume rm "$v" >/dev/null && say "removed volume $v"
	done
	if [ -n "$db_node" ] && [ "$db_node" != "$(docker info -f '{{.Name}}')" ]; then
		say "the database's volume ${STACK}_db-data is on node $db_node:" \
		    "remove it there (docker volume rm ${STACK}_db-data)"
	fi
	for kind in secret config; do
		docker $kind ls -q --filter "label=com.docker.stack.namespace=$STACK" |
		    xargs -r docker $kind rm >/dev/null 2>&1 || true
	done
	if [ -d "$SECRETS" ]; then rm -rf "$SECRETS"; say "removed $SECRETS"; fi
fi
say "stack $STACK is gone ($(( $(now) - T0 )) s)"
