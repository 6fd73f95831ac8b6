#!/bin/sh
# Runs flotilla with FLOTILLA_DB taken from DATABASE_URL when only that is
# set (what `fly postgres attach` sets), through the environment: the URL
# holds a password and never goes on a command line.
set -eu
if [ -z "${FLOTILLA_DB:-}" ] && [ -n "${DATABASE_URL:-}" ]; then
    FLOTILLA_DB="$DATABASE_URL"
    export FLOTILLA_DB
fi
# On Fly, each machine is one replica: its id names it in the lease tables
# unless the deployment names it otherwise.
if [ -z "${FLOTILLA_REPLICA_ID:-}" ] && [ -n "${FLY_MACHINE_ID:-}" ]; then
    FLOTILLA_REPLICA_ID="$FLY_MACHINE_ID"
    export FLOTILLA_REPLICA_ID
fi
# Two glibc malloc arenas unless the deployment says otherwise: with one
# arena per thread, memory freed by one tokio worker is kept for it; a
# 300-tenant converge measured 66 MiB resident instead of 86 with the same
# CPU (docs/benchmarks.md, "Fleet").
MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
export MALLOC_ARENA_MAX
exec /usr/local/bin/flotilla "$@"
