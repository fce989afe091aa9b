#!/bin/sh
# swarmhub-entrypoint - drop root for the swarmhub user with the Docker
# socket's group, then exec the command (default: swarmhub).
#   SWARMHUB_DOCKER_GID   group id to add (default: the socket's group)
#   PGPASSWORD_FILE       file holding the PostgreSQL password (a secret)
# With homes in a local directory (SWARMHUB_HOME=/path) the hub keeps the
# capabilities that making and owning other users' directories there needs
# (chown, fowner, fsetid, dac_override), and no others.
set -eu
if [ -n "${PGPASSWORD_FILE:-}" ]; then
	PGPASSWORD=$(cat "$PGPASSWORD_FILE") || {
		echo "swarmhub-entrypoint: cannot read PGPASSWORD_FILE=$PGPASSWORD_FILE" >&2
		exit 1; }
	export PGPASSWORD
	unset PGPASSWORD_FILE
fi
[ $# -gt 0 ] || set -- swarmhub
if [ "$(id -u)" = 0 ]; then
	gid=${SWARMHUB_DOCKER_GID:-}
	if [ -z "$gid" ]; then
		sock=${SWARMHUB_DOCKER_HOST:-unix:///var/run/docker.sock}
		case $sock in
		unix://*) sock=${sock#unix://}
			[ -S "$sock" ] && gid=$(stat -c %g "$sock") ;;
		esac
	fi
	unset SWARMHUB_DOCKER_GID
	# gid 0 would mean "root group": refuse to hand it out silently
	if [ "$gid" = 0 ]; then
		echo "swarmhub-entrypoint: the Docker socket belongs to group 0;" \
		    "set SWARMHUB_DOCKER_GID or give the socket a group" >&2
		exit 1
	fi
	if [ -n "$gid" ]; then groups="--groups=$gid"; else groups=--clear-groups; fi
	caps=-all
	case ${SWARMHUB_HOME:-} in
	/*) caps=-all,+chown,+fowner,+fsetid,+dac_override ;;
	esac
	exec setpriv --reuid=10001 --regid=10001 "$groups" \
	    --inh-caps="$caps" --ambient-caps="$caps" --no-new-privs -- "$@"
fi
exec "$@"
