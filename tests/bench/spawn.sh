#!/bin/bash
#
# spawn.sh - the spawn benchmark: where the time of a server start goes, and
# 50 spawns at once. Installs the bench packages (wrk), starts a throwaway
# PostgreSQL cluster (tests/services/postgres.sh) and the Docker swarm
# (tests/services/docker.sh start: dockerd, one-node swarm, overlay network),
# runs tests/bench/spawn.py, and on any exit removes every service labelled
# swarmhub.hub=bench<pid> and stops the PostgreSQL it started. dockerd, the
# swarm and the network are shared: never stopped here.
# Results: tests/bench/results/spawn.md (also printed). Also run by run.sh.
#
#   SWARMHUB_BENCH_QUICK=1      3 sequential spawns and a burst of 10
#   SWARMHUB_BENCH_SPAWNS=N     sequential spawns (default 10)
#   SWARMHUB_BENCH_BURST=N      spawns requested at once (default 50, ≤ 60)
#   SWARMHUB_BENCH_ONLY=NAME    "jupyterhub" skips this benchmark
#   SWARMHUB_BENCH_KEEP=1       keep the scratch directory (hub log) afterwards
#
# Needs the image swarmhub/test-notebook:latest (images/build-base.sh, then
# docker build -t swarmhub/test-notebook:latest images/test-notebook).
# Exit 0 when the hub and Docker could be used (missed targets are reported,
# not failed); non-zero when PostgreSQL, Docker or the hub could not be used.
exec "$(dirname "$0")/swarm-bench.sh" spawn "$@"
