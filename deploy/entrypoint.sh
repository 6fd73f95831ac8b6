#!/bin/sh
# Runs flotilla with FLOTILLA_DB taken from DATABASE_URL when only that is
# set (what `fly postgres attach` sets), through the environment: the URL
# holds a password and never goes on a command line.
set -eu
if [ -z "${FLOTILLA_DB:-}" ] && [ -n "${DATABASE_URL:-}" ]; then
    FLOTILLA_DB="$DATABASE_URL"
    export FLOTILLA_DB
fi
exec /usr/local/bin/flotilla "$@"
