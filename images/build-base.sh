#!/bin/bash
#
# build-base.sh - build the Debian 12 base image offline: swarmhub/debian:bookworm.
#
#   images/build-base.sh [--force]
#
# No registry is reachable here, so `FROM debian:bookworm` cannot pull.
# This script makes the image from the Debian mirror instead:
#   debootstrap --variant=minbase bookworm DIR http://deb.debian.org/debian
#   tar -C DIR -c . | docker import - swarmhub/debian:bookworm
# and tags it debian:bookworm and debian:bookworm-slim when those tags are
# absent, so ordinary Dockerfiles build unchanged. Skips the build when the
# image exists (unless --force). Installs debootstrap if missing. Root only.
# Progress goes to stderr; stdout prints the image name on success.
set -eu

IMAGE=swarmhub/debian:bookworm
MIRROR=${SWARMHUB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${SWARMHUB_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

say() { echo "build-base.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s; }

FORCE=0
case ${1:-} in
"") ;;
--force) FORCE=1 ;;
*) die "usage: build-base.sh [--force]" ;;
esac
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
say "debootstrap --variant=minbase bookworm into $ROOTFS (log: $ROOTFS.log)"
if ! debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" \
    >"$ROOTFS.log" 2>&1; then
	tail -n 20 "$ROOTFS.log" >&2
	die "debootstrap failed; full log in $ROOTFS.log"
fi
rm -f "$ROOTFS.log"
T1=$(now)
say "debootstrap took $((T1 - T0)) s"

# Same suites as the host, so images get the same patched versions.
cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
EOF
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
