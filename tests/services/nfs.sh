#!/bin/bash
#
# nfs.sh - a private nfs-ganesha (userspace NFS server) for swarmhub's tests.
#
#   nfs.sh start DIR   install the packages if missing, start rpcbind if it is
#                      not running, start (or keep) DIR's ganesha exporting
#                      DIR/export as /export; prints
#                        SWARMHUB_TEST_NFS_URL=nfs://127.0.0.1/export?nfsport=P&mountport=M
#                        SWARMHUB_TEST_NFS_DIR=DIR/export
#   nfs.sh stop DIR    stop DIR's ganesha (idempotent); rpcbind is left alone
#
# The export is RW, No_root_squash, NFSv3 and v4 over TCP, with
# Mount_Path_Pseudo (v3 mounts "/export" too) and Graceless. It listens on
# 127.0.0.1 only, on an NFS port and a MOUNT port chosen free at the first
# start and kept in DIR/ports ("P M"). Clients must use the URL as printed:
# rpcbind registrations are machine-wide and last-writer-wins, so with two
# instances a portmapper lookup finds only the latest one, and a stopping
# instance unregisters NFS/MOUNT for everybody. With nfsport/mountport in the
# URL libnfs never asks rpcbind, and instances do not disturb each other.
# The kernel here has no NFS client: containers bind-mount
# SWARMHUB_TEST_NFS_DIR instead (same files, owners and modes).
# Runs as root. stdout carries only the SWARMHUB_TEST_* lines; progress
# goes to stderr. Files: DIR/ganesha.conf, DIR/ganesha.log, DIR/ganesha.pid,
# DIR/recovery (NFSv4 state), DIR/ports.
set -eu

PKGS="nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils"

say() { echo "nfs.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { die "usage: nfs.sh start|stop DIR"; }
now_ms() { date +%s%3N; }

[ $# -eq 2 ] || usage
CMD=$1
D=$2

install_pkgs() {
	local p missing=""

	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		say "missing packages; as root run:"
		say "  apt-get update && DEBIAN_FRONTEND=noninteractive" \
		    "apt-get install -y --no-install-recommends$missing"
		exit 1
	fi
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
	    --no-install-recommends $missing >&2 || die "apt-get install failed"
}

gpid() {	# prints the pid of DIR's ganesha, fails when it is not running
	local pid

	[ -f "$D/ganesha.pid" ] || return 1
	pid=$(cat "$D/ganesha.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
	    grep -qF -- "-f $D/ganesha.conf" || return 1
	echo "$pid"
}

do_stop() {
	local pid i

	[ -d "$D" ] || return 0
	D=$(cd "$D" && pwd)
	if pid=$(gpid); then
		say "stopping ganesha pid $pid"
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			say "ganesha pid $pid did not exit in 10 s; sending KILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$D/ganesha.pid"
}

port_busy() {
	ss -Htan "sport = :$1" 2>/dev/null | grep -q .
}

pick_ports() {	# writes DIR/ports once: two free TCP ports
	local p m

	[ -s "$D/ports" ] && return 0
	while :; do
		p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
		m=$((p + 1))
		port_busy "$p" || port_busy "$m" || break
	done
	echo "$p $m" >"$D/ports"
}

write_conf() {	# NFSPORT MNTPORT
	cat >"$D/ganesha.conf" <<EOF
# Written by tests/services/nfs.sh; rewritten at every start.
NFS_CORE_PARAM {
	Protocols = 3, 4;
	Bind_addr = 127.0.0.1;
	NFS_Port = $1;
	MNT_Port = $2;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Enable_UDP = false;
	Mount_Path_Pseudo = true;
}
NFSv4 {
	Graceless = true;
	RecoveryRoot = $D/recovery;
	Lease_Lifetime = 10;
}
NFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = EVENT; }
EXPORT {
	Export_Id = 1;
	Path = $D/export;
	Pseudo = /export;
	Access_Type = RW;
	Squash = No_root_squash;
	Protocols = 3, 4;
	Transports = TCP;
	SecType = sys;
	FSAL { Name = VFS; }
}
EOF
}

start_rpcbind() {
	local i

	rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && return 0
	if ! pgrep -x rpcbind >/dev/null 2>&1; then
		say "starting rpcbind"
		setsid rpcbind -w </dev/null >/dev/null 2>&1 ||
		    die "rpcbind failed to start"
	fi
	for i in $(seq 1 50); do
		rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "rpcbind does not answer (rpcinfo -p 127.0.0.1)"
}

serving() {	# URL
	nfs-ls "$1" >/dev/null 2>&1
}

do_start() {
	local p m url t0 i

	[ "$(id -u)" -eq 0 ] || die "must run as root"
	install_pkgs
	mkdir -p "$D"
	D=$(cd "$D" && pwd)
	mkdir -p "$D/export" "$D/recovery"
	chmod 755 "$D" "$D/export"
	pick_ports
	read -r p m <"$D/ports"
	url="nfs://127.0.0.1/export?nfsport=$p&mountport=$m"
	start_rpcbind
	if gpid >/dev/null; then
		say "ganesha already running (pid $(gpid))"
	else
		if port_busy "$p" || port_busy "$m"; then
			die "port $p or $m is taken; remove $D/ports to pick new ones"
		fi
		write_conf "$p" "$m"
		rm -f "$D/ganesha.pid"
		t0=$(now_ms)
		setsid ganesha.nfsd -F -f "$D/ganesha.conf" -L "$D/ganesha.log" \
		    -p "$D/ganesha.pid" -N NIV_EVENT </dev/null >/dev/null 2>&1 &
		for i in $(seq 1 300); do
			serving "$url" && break
			if [ "$i" -gt 10 ] && ! gpid >/dev/null; then
				tail -n 5 "$D/ganesha.log" >&2
				die "ganesha exited; see $D/ganesha.log"
			fi
			sleep 0.1
		done
		serving "$url" || die "ganesha not serving after 30 s; see $D/ganesha.log"
		say "ganesha pid $(gpid) serving in $(( $(now_ms) - t0 )) ms"
	fi
	serving "$url" || die "ganesha runs but does not serve $url"
	echo "SWARMHUB_TEST_NFS_URL=$url"
	echo "SWARMHUB_TEST_NFS_DIR=$D/export"
}

case $CMD in
start) do_start ;;
stop) do_stop ;;
*) usage ;;
esac
