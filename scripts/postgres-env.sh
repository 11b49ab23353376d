#!/usr/bin/env bash
# A throw-away PostgreSQL for backend-sync's tests, without systemd: a cluster in a temporary
# directory, listening on loopback only, trust authentication (nothing but this machine can
# reach it). Idempotent; safe to call from several test processes at once (flock).
#
#   scripts/postgres-env.sh install   install the Debian package if initdb/pg_ctl are missing
#   scripts/postgres-env.sh start     install if needed, create the cluster if needed, start it
#   scripts/postgres-env.sh stop      stop it (the cluster stays for the next start)
#   scripts/postgres-env.sh status    exit 0 if it answers
#   scripts/postgres-env.sh url       print the URL
#
# Settings (environment): SSCARD_PG_DIR (default /tmp/sscard-pg), SSCARD_PG_PORT (55432).
# `start` writes $SSCARD_PG_DIR/url (postgres://postgres@127.0.0.1:PORT/sscard) and
# $SSCARD_PG_DIR/env (export SSCARD_PG_URL=...); the tests read SSCARD_PG_URL or the url file.
set -euo pipefail

DIR="${SSCARD_PG_DIR:-/tmp/sscard-pg}"
PORT="${SSCARD_PG_PORT:-55432}"
URL="postgres://postgres@127.0.0.1:${PORT}/sscard"

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

install() {
    if pg_bin >/dev/null; then
        return 0
    fi
    echo "postgres-env: installing postgresql" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "postgres-env: need root (or sudo) to install postgresql" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    # The package starts a cluster of its own through systemd where there is one; ours is
    # separate (own directory and port), so nothing else to do.
    pg_bin >/dev/null
}

# Run a command as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

answers() {
    "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1
}

start() {
    install
    local bin
    bin="$(pg_bin)"
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock 9
    if ! answers; then
        if [ ! -f "$DIR/data/PG_VERSION" ]; then
            rm -rf "$DIR/data"
            mkdir -p "$DIR/data" "$DIR/sock"
            if [ "$(id -u)" -eq 0 ]; then
                chown -R postgres: "$DIR/data" "$DIR/sock"
            fi
            as_owner "$bin/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
                as_owner "$bin/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 >"$DIR/initdb.log" 2>&1
        fi
        mkdir -p "$DIR/sock"
        touch "$DIR/server.log"
        if [ "$(id -u)" -eq 0 ]; then
            chown postgres: "$DIR/sock" "$DIR/server.log"
        fi
        as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
            -o "-p $PORT -k $DIR/sock -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null 9>&-
    fi
    if ! "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'sscard'" | grep -q 1; then
        "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE sscard"
    fi
    echo "$URL" >"$DIR/url"
    echo "export SSCARD_PG_URL=$URL" >"$DIR/env"
    echo "postgres-env: running at $URL" >&2
}

stop() {
    local bin
    bin="$(pg_bin)" || return 0
    if [ -f "$DIR/data/PG_VERSION" ] && answers; then
        as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
    fi
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
status) answers ;;
url) echo "$URL" ;;
*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
