#!/bin/sh
#
# check-settings.sh - every SWARMHUB_* setting the C sources read is
# documented in docs/settings.md, and every setting documented there is read
# somewhere (`make check-settings`, part of `make test`).
#
# Read: the names passed as string literals to the settings readers of
# common/cfg.c and hub/config.c (cfg_get, cfg_long, cfg_bool, cfg_duration,
# and any cfg_* or *_setting function such as str_setting), and
# getenv("SWARMHUB_...") (or a wrapper ending in env) in hub/, hub/ctl/,
# spawner/, culler/, edge/ and common/.
# Documented: a name in backquotes, with or without SWARMHUB_, in the first
# cell of a table row of docs/settings.md whose default and meaning cells are
# not empty.
# Read somewhere: the name occurs (as "NAME" or SWARMHUB_NAME) in a file of
# the tree other than the documentation (scripts, compose, images, tests).
# Prints "check-settings: ok (N ...)" or the offending names; exit 1 then.
set -eu
cd "$(dirname "$0")/.."
DOC=docs/settings.md
SRC=$(ls hub/*.c hub/ctl/*.c spawner/*.c culler/*.c edge/*.c common/*.c \
    2>/dev/null)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

[ -r "$DOC" ] || { echo "check-settings: $DOC is missing"; exit 1; }

# shellcheck disable=SC2086
{
	grep -hoE '\b(cfg_[a-z_]+|[a-z_]*_setting) *\( *"[A-Z][A-Z0-9_]*"' \
	    $SRC | sed -E 's/.*"([A-Z0-9_]+)"$/\1/'
	grep -hoE '\b[a-z_]*env *\( *"SWARMHUB_[A-Z0-9_]+"' $SRC |
	    sed -E 's/.*"SWARMHUB_([A-Z0-9_]+)"$/\1/'
} | sort -u >"$TMP/read"

awk -F'|' '
	/^[ \t]*\|/ && NF >= 5 && $3 !~ /^[ \t]*$/ && $4 !~ /^[ \t]*$/ {
		cell = $2
		while (match(cell, /`(SWARMHUB_)?[A-Z][A-Z0-9_]*`/)) {
			name = substr(cell, RSTART + 1, RLENGTH - 2)
			sub(/^SWARMHUB_/, "", name)
			print name
			cell = substr(cell, RSTART + RLENGTH)
		}
	}' "$DOC" | sort -u >"$TMP/documented"

# Every name the rest of the tree mentions, to find documented names that
# nothing reads any more.
find . -type d \( -name .git -o -name 'build*' -o -name bin -o -name out \
    -o -name docs -o -name node_modules \) -prune -o -type f \
    ! -name '*.md' -exec grep -IhoE \
    'SWARMHUB_[A-Z0-9_]+|"[A-Z][A-Z0-9_]+"' {} + 2>/dev/null |
    sed -E 's/^SWARMHUB_//; s/"//g' | sort -u >"$TMP/mentioned" || true

missing=$(comm -23 "$TMP/read" "$TMP/documented")
stale=$(comm -23 "$TMP/documented" "$TMP/mentioned")
rc=0
if [ -n "$missing" ]; then
	echo "check-settings: read in the C sources but not in a table of" \
	    "$DOC (name, default, meaning):"
	echo "$missing" | sed 's/^/  SWARMHUB_/'
	rc=1
fi
if [ -n "$stale" ]; then
	echo "check-settings: in $DOC but read nowhere in the tree:"
	echo "$stale" | sed 's/^/  SWARMHUB_/'
	rc=1
fi
[ "$rc" -ne 0 ] || echo "check-settings: ok ($(wc -l <"$TMP/read") settings" \
    "read by the C sources, $(wc -l <"$TMP/documented") documented in $DOC)"
exit "$rc"
