#!/bin/bash
# postgres.sh - the tests' throwaway PostgreSQL 15 cluster: scripts/postgres.sh
# (shared with `make run`), which documents the commands.
exec "$(dirname "$0")/../../scripts/postgres.sh" "$@"
