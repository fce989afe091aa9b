#!/bin/sh
# build.sh - builds swarmhub/test-tiny:latest: compiles tiny_notebook.c
# static on the host (the image is FROM scratch: no compiler in it), then
# docker build. The binary stays in this directory (not committed).
#
#   images/test-tiny/build.sh [--help] [TAG]    (default swarmhub/test-tiny:latest)
set -eu
case ${1:-} in
-h|--help)
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
	exit 0 ;;
esac
TAG=${1:-swarmhub/test-tiny:latest}
DIR=$(cd "$(dirname "$0")" && pwd)
${CC:-gcc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
    -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual \
    -static -O2 -s -o "$DIR/tiny-notebook" "$DIR/tiny_notebook.c"
docker build -q -t "$TAG" "$DIR" >/dev/null
echo "build.sh: built $TAG ($(stat -c %s "$DIR/tiny-notebook") bytes)" >&2
