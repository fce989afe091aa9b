#!/bin/bash
#
# build-base.sh - build the Debian 12 base image offline: swarmhub/debian:bookworm.
#
#   images/build-base.sh [--force]
#   images/build-base.sh --print-mirror    # print the mirrors it would use
#
# No registry is reachable here, so `FROM debian:bookworm` cannot pull.
# This script makes the image from a Debian mirror instead:
#   debootstrap --variant=minbase bookworm DIR MIRROR
#   tar -C DIR -c . | docker import - swarmhub/debian:bookworm
# and tags it debian:bookworm and debian:bookworm-slim when those tags are
# absent, so ordinary Dockerfiles build unchanged. Skips the build when the
# image exists (unless --force). Installs debootstrap if missing. Root only.
# Progress goes to stderr; stdout prints the image name on success.
#
# MIRROR is the one this machine's apt uses: the first http(s) URI of an
# enabled "deb" source for bookworm with component main, in apt's order:
# /etc/apt/sources.list, then sources.list.d/*.list (one-line format) and
# *.sources (deb822). Failing that, the first such source of another plain
# suite (no "-") whose URI ends in /debian. The security archive is found
# the same way (suite bookworm-security; none: the image goes without).
# Overrides: SWARMHUB_DEBIAN_MIRROR, SWARMHUB_DEBIAN_SECURITY, and
# SWARMHUB_APT_DIR (default /etc/apt) to read another apt configuration.
# --print-mirror prints MIRROR, then the security archive if any, and exits.
set -eu

IMAGE=swarmhub/debian:bookworm
SUITE=bookworm
APT_DIR=${SWARMHUB_APT_DIR:-/etc/apt}

say() { echo "build-base.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s; }

# apt's source files, in the order apt reads them.
apt_files() {
	local f

	[ ! -r "$APT_DIR/sources.list" ] || echo "$APT_DIR/sources.list"
	for f in "$APT_DIR"/sources.list.d/*; do
		case $f in
		*.list | *.sources) [ ! -r "$f" ] || echo "$f" ;;
		esac
	done
}

# One "URI SUITE..." line per URI of an enabled deb source with component main.
apt_sources() {
	local f

	apt_files | while read -r f; do
		case $f in
		*.sources) awk '
			BEGIN { RS = ""; FS = "\n" }
			{
				split("", v); k = ""
				for (n = 1; n <= NF; n++) {
					l = $n
					if (l ~ /^#/)
						continue
					if (l ~ /^[ \t]/) {
						if (k != "")
							v[k] = v[k] " " l
						continue
					}
					i = index(l, ":")
					if (i == 0)
						continue
					k = tolower(substr(l, 1, i - 1))
					v[k] = substr(l, i + 1)
				}
				if (tolower(v["enabled"]) ~ /no/ ||
				    (v["types"] " ") !~ /[ \t]deb[ \t]/ ||
				    (v["components"] " ") !~ /[ \t]main[ \t]/)
					next
				nu = split(v["uris"], u, /[ \t]+/)
				for (j = 1; j <= nu; j++)
					if (u[j] != "")
						print u[j], v["suites"]
			}' "$f" ;;
		*) awk '
			{ sub(/#.*/, "") }
			$1 == "deb" {
				i = 2
				if ($2 ~ /^\[/) {
					while (i <= NF && $i !~ /\]$/)
						i++
					i++
				}
				for (j = i + 2; j <= NF; j++)
					if ($j == "main") {
						print $i, $(i + 1)
						break
					}
			}' "$f" ;;
		esac
	done
}

# apt_uri SUITE [loose]: the first http(s) URI serving SUITE; with "loose",
# the first serving a plain suite (no "-") whose URI ends in /debian.
apt_uri() {
	apt_sources | awk -v want="$1" -v loose="${2:-}" '
		$1 !~ /^https?:\/\// { next }
		{
			path = $1
			sub(/\/+$/, "", path)
			for (i = 2; i <= NF; i++)
				if ($i == want || (loose != "" && $i !~ /-/ &&
				    path ~ /\/debian$/)) {
					print $1
					exit
				}
		}'
}

find_mirrors() {
	MIRROR=${SWARMHUB_DEBIAN_MIRROR:-$(apt_uri "$SUITE")}
	[ -n "$MIRROR" ] || MIRROR=$(apt_uri "$SUITE" loose)
	[ -n "$MIRROR" ] || die "no Debian mirror found: no enabled http(s)" \
	    "'deb' source for $SUITE main in $APT_DIR/sources.list or" \
	    "$APT_DIR/sources.list.d/*.list, *.sources; set" \
	    "SWARMHUB_DEBIAN_MIRROR to the mirror's URL (ending in /debian)"
	SECURITY=${SWARMHUB_DEBIAN_SECURITY:-$(apt_uri "$SUITE-security")}
}

FORCE=0
case ${1:-} in
"") ;;
--force) FORCE=1 ;;
--print-mirror)
	find_mirrors
	echo "$MIRROR"
	[ -z "$SECURITY" ] || echo "$SECURITY"
	exit 0 ;;
*) die "usage: build-base.sh [--force | --print-mirror]" ;;
esac
find_mirrors
[ -n "$SECURITY" ] || say "no $SUITE-security source in apt's sources" \
    "(or SWARMHUB_DEBIAN_SECURITY): the image gets no security suite"
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap)"
docker info >/dev/null 2>&1 ||
    die "docker is not answering; run tests/services/docker.sh start"

tag_aliases() {
	local t

	for t in debian:bookworm debian:bookworm-slim; do
		docker image inspect "$t" >/dev/null 2>&1 && continue
		docker tag "$IMAGE" "$t"
		say "tagged $t"
	done
}

if [ "$FORCE" -eq 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
	say "$IMAGE exists (use --force to rebuild)"
	tag_aliases
	echo "$IMAGE"
	exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
	say "installing debootstrap"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
	    --no-install-recommends debootstrap >&2 ||
	    die "apt-get install debootstrap failed"
fi

OLD_ID=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
ROOTFS=$(mktemp -d /var/tmp/swarmhub-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
T0=$(now)
say "debootstrap --variant=minbase bookworm from $MIRROR into $ROOTFS (log: $ROOTFS.log)"
if ! debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" \
    >"$ROOTFS.log" 2>&1; then
	tail -n 20 "$ROOTFS.log" >&2
	die "debootstrap failed; full log in $ROOTFS.log"
fi
rm -f "$ROOTFS.log"
T1=$(now)
say "debootstrap took $((T1 - T0)) s"

# Same suites as the host, so images get the same patched versions.
{
	echo "deb $MIRROR $SUITE main"
	echo "deb $MIRROR $SUITE-updates main"
	[ -z "$SECURITY" ] || echo "deb $SECURITY $SUITE-security main"
} >"$ROOTFS/etc/apt/sources.list"
# Small images: no recommends, no cached .debs (like the official images).
cat >"$ROOTFS/etc/apt/apt.conf.d/90swarmhub" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
rm -rf "${ROOTFS:?}"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
    "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/* "${ROOTFS:?}"/dev/*
: >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/resolv.conf"

say "importing into docker as $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase bookworm $MIRROR" \
    - "$IMAGE" >/dev/null || die "docker import failed"
T2=$(now)
say "import took $((T2 - T1)) s; total $((T2 - T0)) s;" \
    "size $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"
# Aliases that named the image we replaced now name the new one.
for t in debian:bookworm debian:bookworm-slim; do
	[ -n "$OLD_ID" ] || break
	if [ "$(docker image inspect -f '{{.Id}}' "$t" 2>/dev/null)" = "$OLD_ID" ]
	then
		docker tag "$IMAGE" "$t"
		say "re-tagged $t"
	fi
done
tag_aliases
echo "$IMAGE"
