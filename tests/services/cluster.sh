#!/bin/bash
#
# cluster.sh - a real multi-node Docker swarm on this one machine, for tests.
#
#   cluster.sh start N    a manager and N-1 workers (N >= 1, at most 8), each
#                         its own dockerd in its own network namespace, joined
#                         into one swarm; prints on stdout, one per line:
#                           SWARMHUB_TEST_DOCKER_HOST=unix:///run/...sock
#                           SWARMHUB_TEST_MANAGER_ADDR=<manager's address>
#                           SWARMHUB_TEST_NODES=<node ID>,...  (manager first)
#                         The last worker has two fake GPUs (the discrete
#                         generic resource gpu=2) and the label
#                         pool=gpu; every other node has pool=cpu. The images
#                         in SWARMHUB_TEST_IMAGES (space-separated; default:
#                         the project's hub, nginx, postgres and test-notebook
#                         images) are copied from the machine's main dockerd
#                         into every node. A cluster already running with N
#                         nodes is reused (its lines printed again); one of
#                         another size, or a half-made one, is removed first.
#   cluster.sh stop       removes it all: the daemons and their containers,
#                         namespaces, bridge, firewall rule, data; safe to run
#                         any number of times and after a failed start.
#   cluster.sh status     prints the lines of a running cluster (exit 1: none)
#   cluster.sh kill-node I
#                         node I (1..N-1, a worker) dies as a machine would:
#                         its dockerd, containerd and containers are killed
#                         (SIGKILL), its namespace and data stay; the manager
#                         marks it Down after its heartbeat period (~5-10 s)
#   cluster.sh revive-node I
#                         starts node I's dockerd again on its old data: it
#                         rejoins the swarm as the same node; waits until the
#                         manager sees it Ready. With SWARMHUB_CLUSTER_PULL=1
#                         the node pulls service images as production nodes
#                         do; by default nodes run only the images they have
#                         (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: no public
#                         registry is reachable here)
#
# Never touches the machine's main dockerd, its swarm or its networks. The
# nodes hang off a bridge shc-br with addresses SWARMHUB_CLUSTER_NET.1 (the
# host) and .2, .3, ... (manager, workers); default net 10.213.7. Each
# node's bridge networks come from its own pool (172.(40+i).0.0/16), so they
# never overlap. SWARMHUB_CLUSTER_ID=K (1..7) runs another, separate cluster
# (bridge shKc-br, net 10.213.(7+K), /run/swarmhub-cluster-K, pools
# 172.(40+8K+i)) beside it, e.g. for tests running in parallel. The
# daemons share the host's filesystem: a bind-mount path is the same on
# every node. The host reaches a node at its bridge address
# only (use ports published in host mode on the manager).
# stdout carries only the SWARMHUB_TEST_* lines; progress goes to stderr.
set -eu

# SWARMHUB_CLUSTER_ID=K (0..7, default 0) runs a separate cluster with its own
# names, addresses and directories, so that several can run side by side
CID=${SWARMHUB_CLUSTER_ID:-0}
case $CID in [0-7]) ;; *) echo "cluster.sh: SWARMHUB_CLUSTER_ID must be 0..7" >&2; exit 1 ;; esac
if [ "$CID" = 0 ]; then P=shc; SFX=""; else P="sh${CID}c"; SFX="-$CID"; fi
NET=${SWARMHUB_CLUSTER_NET:-10.213.$(( 7 + CID ))}
BR=$P-br
RUN=/run/swarmhub-cluster$SFX
DATA=/var/lib/swarmhub-cluster$SFX
IMAGES=${SWARMHUB_TEST_IMAGES:-swarmhub/hub:latest swarmhub/nginx:latest swarmhub/postgres:15 swarmhub/test-notebook:latest}
MAXN=8

say() { echo "cluster.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { die "usage: cluster.sh start N | stop | status | kill-node I | revive-node I"; }
now_ms() { date +%s%3N; }

sock() { echo "$RUN/n$1.sock"; }
node_name() { if [ "$1" = 0 ]; then echo shc-manager; else echo "shc-worker$1"; fi; }
addr() { echo "$NET.$(( $1 + 2 ))"; }
dk() { local i=$1; shift; DOCKER_HOST="unix://$(sock "$i")" timeout 60 docker "$@"; }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, dockerd)"
	for c in ip iptables nsenter dockerd docker flock; do
		command -v $c >/dev/null 2>&1 || die "$c is not installed"
	done
}

lock() {
	mkdir -p "$RUN"
	exec 9>"$RUN.lock"
	flock -w 600 9 || die "another cluster.sh holds $RUN.lock"
}

# ---- teardown ----------------------------------------------------------
node_ids_present() { # indexes of nodes with any trace left
	local d n
	for d in "$RUN"/n*.pid "$DATA"/n* /var/run/netns/$P[0-9]*; do
		[ -e "$d" ] || continue
		n=${d##*/}; n=${n#"$P"}; n=${n#n}; n=${n%.pid}
		case $n in ''|*[!0-9]*) continue ;; esac
		echo "$n"
	done | sort -un
}

kill_node() {
	local i=$1 pid=""

	[ -f "$RUN/n$i.pid" ] && pid=$(cat "$RUN/n$i.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		DOCKER_HOST="unix://$(sock "$i")" timeout 20 docker swarm leave --force >/dev/null 2>&1 || true
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	# what the daemon left behind in its namespace (containerd, shims, tasks)
	if [ -e "/var/run/netns/$P$i" ]; then
		ip netns pids "$P$i" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		sleep 0.2
	fi
}

umount_under() { # lazily unmount everything mounted below $1, deepest first
	awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts |
	    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

teardown() {
	local i

	for i in $(node_ids_present); do kill_node "$i"; done
	umount_under "$RUN"
	umount_under "$DATA"
	for i in $(node_ids_present) $(seq 0 $MAXN); do
		[ -e "/var/run/netns/$P$i" ] && ip netns del "$P$i" 2>/dev/null || true
		ip link del "$P-h$i" 2>/dev/null || true
	done
	ip link del "$BR" 2>/dev/null || true
	while iptables -D FORWARD -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null; do :; done
	rm -rf "$DATA" "$RUN"/n* "$RUN"/lines
}

# ---- start -------------------------------------------------------------
make_net() {
	local i=$1 a

	a=$(addr "$i")
	ip netns add "$P$i"
	ip link add "$P-h$i" type veth peer name "$P-n$i"
	ip link set "$P-h$i" master "$BR"
	ip link set "$P-h$i" up
	ip link set "$P-n$i" netns "$P$i"
	nsenter --net="/var/run/netns/$P$i" sh -c "
		ip addr add $a/24 dev $P-n$i && ip link set $P-n$i up &&
		ip link set lo up && ip route add default via $NET.1" ||
	    die "cannot configure namespace $P$i"
}

start_daemon() { # start_daemon I LAST
	local i=$1

	mkdir -p "$DATA/n$i/root" "$DATA/n$i/exec"
	# fake GPUs for the scheduler (this dockerd has no command-line flag
	# for them; daemon.json has the key). Discrete, not named
	# (gpu=GPU-fake-0, ...): Docker 20.10 rejects a task holding a named
	# resource at its node's next update (tests/services/README.md)
	if [ "$2" = 1 ]; then
		echo '{"node-generic-resources": ["gpu=2"]}'
	else
		echo '{}'
	fi >"$DATA/n$i/daemon.json"
	# own UTS namespace too, so each node has its own hostname (shc-manager,
	# shc-worker1, ...), as the node page and constraints expect
	local offline=1
	[ "${SWARMHUB_CLUSTER_PULL:-0}" = 1 ] && offline=0
	DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=$offline setsid nsenter --net="/var/run/netns/$P$i" \
	    unshare --uts sh -c 'hostname "$0" && exec "$@"' "$(node_name "$i")" \
	    dockerd --data-root "$DATA/n$i/root" --exec-root "$DATA/n$i/exec" \
	    -H "unix://$(sock "$i")" -p "$RUN/n$i.pid" \
	    --default-address-pool "base=172.$(( 40 + 8 * CID + i )).0.0/16,size=24" \
	    --config-file "$DATA/n$i/daemon.json" >"$DATA/n$i.log" 2>&1 </dev/null 9>&- &
	echo $! >"$RUN/n$i.launcher"
}

wait_daemon() {
	local i=$1
	for _ in $(seq 1 1200); do
		DOCKER_HOST="unix://$(sock "$i")" docker info >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$RUN/n$i.launcher")" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$DATA/n$i.log" >&2 || true
	die "node $i's dockerd exited or did not answer within 120 s (log above: $DATA/n$i.log)"
}

load_images() { # copies $IMAGES from the main dockerd into nodes 0..N-1
	local n=$1 img tar i pids=() ok=1

	mkdir -p "$DATA/images"
	for img in $IMAGES; do
		docker image inspect "$img" >/dev/null 2>&1 ||
		    die "image $img is not on the main dockerd (build it first)"
	done
	tar="$DATA/images/all.tar"
	say "saving $(echo $IMAGES | wc -w) images from the main dockerd"
	# shellcheck disable=SC2086
	docker save -o "$tar" $IMAGES || die "docker save failed"
	say "loading them into $n nodes ($(du -m "$tar" | cut -f1) MB each)"
	for i in $(seq 0 $(( n - 1 ))); do
		DOCKER_HOST="unix://$(sock "$i")" docker load -q -i "$tar" >/dev/null 9>&- &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || ok=0; done
	rm -f "$tar"
	[ $ok = 1 ] || die "docker load into a node failed"
}

start() {
	local n=$1 i t0 token ids="" id mgr

	t0=$(now_ms)
	if [ -f "$RUN/lines" ] && [ "$(cat "$RUN/n" 2>/dev/null)" = "$n" ] &&
	   dk 0 node ls >/dev/null 2>&1 &&
	   [ "$(dk 0 node ls --filter role=worker -q | wc -l)" -ge $(( n - 1 )) ]; then
		say "a $n-node cluster is running already"
		cat "$RUN/lines"
		return 0
	fi
	teardown
	mkdir -p "$RUN" "$DATA"
	echo "$n" >"$RUN/n"
	ip link add "$BR" type bridge
	ip addr add "$NET.1/24" dev "$BR"
	ip link set "$BR" up
	iptables -I FORWARD -i "$BR" -o "$BR" -j ACCEPT
	for i in $(seq 0 $(( n - 1 ))); do
		make_net "$i"
		start_daemon "$i" "$([ "$n" -gt 1 ] && [ "$i" = $(( n - 1 )) ] && echo 1 || echo 0)"
	done
	for i in $(seq 0 $(( n - 1 ))); do wait_daemon "$i"; done
	say "$n daemons up in $(( $(now_ms) - t0 )) ms"
	dk 0 swarm init --advertise-addr "$(addr 0)" >/dev/null ||
	    die "swarm init on the manager failed"
	token=$(dk 0 swarm join-token -q worker)
	for i in $(seq 1 $(( n - 1 ))); do
		dk "$i" swarm join --token "$token" "$(addr 0):2377" >/dev/null ||
		    die "node $i could not join the swarm"
	done
	for i in $(seq 0 $(( n - 1 ))); do
		id=$(dk "$i" info --format '{{.Swarm.NodeID}}')
		[ -n "$id" ] || die "node $i has no swarm node ID"
		if [ "$n" -gt 1 ] && [ "$i" = $(( n - 1 )) ]; then
			dk 0 node update --label-add pool=gpu "$id" >/dev/null
		else
			dk 0 node update --label-add pool=cpu "$id" >/dev/null
		fi
		ids="$ids${ids:+,}$id"
	done
	# every worker must be seen ready by the manager before use
	for _ in $(seq 1 300); do
		[ "$(dk 0 node ls --format '{{.Status}}' | grep -c '^Ready$')" = "$n" ] && break
		sleep 0.1
	done
	[ "$(dk 0 node ls --format '{{.Status}}' | grep -c '^Ready$')" = "$n" ] ||
	    die "not all $n nodes are Ready: $(dk 0 node ls)"
	[ -n "$IMAGES" ] && load_images "$n"
	mgr=$(addr 0)
	{
		echo "SWARMHUB_TEST_DOCKER_HOST=unix://$(sock 0)"
		echo "SWARMHUB_TEST_MANAGER_ADDR=$mgr"
		echo "SWARMHUB_TEST_NODES=$ids"
	} >"$RUN/lines"
	say "a $n-node swarm ready in $(( $(now_ms) - t0 )) ms"
	cat "$RUN/lines"
}

# ---- a worker dies and comes back ------------------------------------------
node_arg() { # validates a worker index of the running cluster
	local i=$1 n
	n=$(cat "$RUN/n" 2>/dev/null || echo 0)
	case $i in ''|*[!0-9]*) usage ;; esac
	[ "$i" -ge 1 ] && [ "$i" -lt "$n" ] || die "node $i is not a worker of the running $n-node cluster"
}

kill_worker() {
	local i=$1 pid=""
	[ -f "$RUN/n$i.pid" ] && pid=$(cat "$RUN/n$i.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	# containerd, shims and the containers' processes live in the namespace
	ip netns pids "$P$i" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	rm -f "$RUN/n$i.pid"
	say "node $i killed"
}

revive_worker() {
	local i=$1 n id
	n=$(cat "$RUN/n")
	[ -f "$RUN/n$i.pid" ] && kill -0 "$(cat "$RUN/n$i.pid")" 2>/dev/null &&
	    { say "node $i is running"; return 0; }
	rm -f "$(sock "$i")"
	start_daemon "$i" "$([ "$i" = $(( n - 1 )) ] && echo 1 || echo 0)"
	wait_daemon "$i"
	id=$(dk "$i" info --format '{{.Swarm.NodeID}}')
	for _ in $(seq 1 600); do
		[ "$(dk 0 node inspect --format '{{.Status.State}}' "$id" 2>/dev/null)" = ready ] && { say "node $i is back"; return 0; }
		sleep 0.1
	done
	die "node $i did not come back Ready within 60 s"
}

case ${1:-} in
kill-node)
	need_root
	lock
	node_arg "${2:-}"
	kill_worker "$2"
	;;
revive-node)
	need_root
	lock
	node_arg "${2:-}"
	revive_worker "$2"
	;;
start)
	n=${2:-}
	case $n in ''|*[!0-9]*) usage ;; esac
	[ "$n" -ge 1 ] && [ "$n" -le $MAXN ] || die "N must be 1..$MAXN"
	need_root
	lock
	trap 'rc=$?; if [ $rc != 0 ]; then say "start failed: removing what was made"; teardown; fi' EXIT
	start "$n"
	trap - EXIT
	;;
stop)
	need_root
	lock
	teardown
	say "removed"
	;;
status)
	[ -f "$RUN/lines" ] && dk 0 node ls >/dev/null 2>&1 || { say "no cluster is running"; exit 1; }
	cat "$RUN/lines"
	;;
-h|--help|help)
	sed -n '3,44p' "$0" | sed 's/^# \{0,1\}//'
	;;
*)
	usage
	;;
esac
