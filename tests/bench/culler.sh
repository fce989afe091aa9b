#!/bin/bash
#
# culler.sh - the culler benchmark: one culler pass over 200 running servers
# (issue 5: <= 2 s with concurrency 10, hub API p99 <= 20 ms meanwhile).
# Installs the bench packages, starts a throwaway PostgreSQL cluster
# (tests/services/postgres.sh) and the Docker swarm (tests/services/docker.sh
# start), runs tests/bench/culler.py, and on any exit removes every service
# labelled swarmhub.hub=bench<pid> and stops the PostgreSQL it started.
# dockerd, the swarm and the network are shared: never stopped here.
# Results: tests/bench/results/culler.md (also printed). Also run by run.sh.
#
#   SWARMHUB_BENCH_QUICK=1      40 servers instead of 200
#   SWARMHUB_BENCH_SERVERS=N    servers (default 200)
#   SWARMHUB_BENCH_ONLY=NAME    "jupyterhub" skips this benchmark
#   SWARMHUB_BENCH_KEEP=1       keep the scratch directory (hub log) afterwards
#
# Needs the image swarmhub/test-notebook:latest (images/build-base.sh, then
# docker build -t swarmhub/test-notebook:latest images/test-notebook).
# Exit 0 when the hub and Docker could be used (missed targets are reported,
# not failed); non-zero when PostgreSQL, Docker or the hub could not be used.
exec "$(dirname "$0")/swarm-bench.sh" culler "$@"
