#!/bin/sh
# deps.sh - install the Debian packages swarmhub needs to build, run and test.
# As root: installs what is missing with apt-get. Otherwise: prints the exact
# command to run and fails. SWARMHUB_DEPS lists extra groups: "bench".
set -eu
PKGS="build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev
libjansson-dev libpq-dev libldap-dev libnfs-dev libssl-dev libcrypt-dev
postgresql slapd ldap-utils openssl python3 python3-requests python3-pytest
clang libclang-rt-14-dev valgrind procps chromium chromium-driver
python3-selenium python3-websocket"
case " ${SWARMHUB_DEPS:-} " in
*" bench "*) PKGS="$PKGS wrk jupyterhub python3-psycopg2 nginx-light" ;;
esac
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages; run as root:" >&2
	echo "  apt-get update && DEBIAN_FRONTEND=noninteractive $cmd" >&2
	exit 1
fi
echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
