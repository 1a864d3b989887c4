#!/usr/bin/env bash
# Install Debian's PostgreSQL, start a cluster on 127.0.0.1 and create a user + database for the tuning tests.
#
# Usage (as root, idempotent: safe to run again on a machine where it already ran):
#   source tuning/ci_postgres.sh            # exports TUNING_TEST_POSTGRES_URL in the current shell
#   eval "$(bash tuning/ci_postgres.sh)"    # same, from a sub-process (the export line is the only stdout)
#
# Settings (environment, all optional): TUNING_PG_USER (tuning), TUNING_PG_DB (tuning_test),
# TUNING_PG_PASSWORD (random each run: the role's password is reset to it, so the printed URL is always valid).
# Progress goes to stderr; stdout carries only the export line, so `eval` works.

_tuning_pg_main() (
    set -euo pipefail
    local user="${TUNING_PG_USER:-tuning}"
    local db="${TUNING_PG_DB:-tuning_test}"
    local password="${TUNING_PG_PASSWORD:-}"
    log() { echo "ci_postgres: $*" >&2; }

    # Names end up inside SQL, so only allow plain identifiers (no quoting games).
    if ! [[ "$user" =~ ^[a-z_][a-z0-9_]*$ && "$db" =~ ^[a-z_][a-z0-9_]*$ ]]; then
        log "TUNING_PG_USER / TUNING_PG_DB must be lower-case identifiers"; return 1
    fi
    if [[ -z "$password" ]]; then
        password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    elif ! [[ "$password" =~ ^[A-Za-z0-9_.~-]+$ ]]; then
        # Keeps the password safe inside SQL and inside a URL without escaping.
        log "TUNING_PG_PASSWORD may only use [A-Za-z0-9_.~-]"; return 1
    fi
    if [[ "$(id -u)" != 0 ]]; then
        log "must run as root (it installs packages and runs psql as the postgres user)"; return 1
    fi

    if ! command -v pg_lsclusters >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        log "installing postgresql (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
    fi

    # Debian's postinst normally creates the "main" cluster; create one if this machine has none.
    local version
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
        log "creating cluster $version/main"
        pg_createcluster "$version" main >&2
    fi
    # Loopback only: the test server must not be reachable from other machines. A conf.d file (included by
    # Debian's postgresql.conf) rather than editing postgresql.conf keeps re-runs idempotent.
    mkdir -p "/etc/postgresql/$version/main/conf.d"
    echo "listen_addresses = '127.0.0.1'" >"/etc/postgresql/$version/main/conf.d/90-tuning-listen.conf"
    local port
    port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
        log "starting cluster $version/main on 127.0.0.1:$port"
        pg_ctlcluster "$version" main start >&2
    fi
    local i
    for i in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 1
    done
    pg_isready -q -h 127.0.0.1 -p "$port" || { log "server did not become ready on 127.0.0.1:$port"; return 1; }

    local psql=(runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres)
    "${psql[@]}" >&2 <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
        CREATE ROLE $user LOGIN;
    END IF;
END \$\$;
ALTER ROLE $user WITH LOGIN PASSWORD '$password';
SQL
    if ! "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
        "${psql[@]}" -c "CREATE DATABASE $db OWNER $user" >&2
    fi
    log "ready: postgresql+psycopg://$user:***@127.0.0.1:$port/$db"
    echo "export TUNING_TEST_POSTGRES_URL=postgresql+psycopg://$user:$password@127.0.0.1:$port/$db"
)

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: export into the caller's shell without printing the password.
    _tuning_pg_line="$(_tuning_pg_main)" && eval "$_tuning_pg_line"
    _tuning_pg_status=$?
    unset -f _tuning_pg_main
    unset _tuning_pg_line
    # `return` keeps a sourcing shell alive and its status tells `set -e` callers whether it worked; eval expands
    # the status before the unset runs, so no variable is left behind in the caller's shell.
    eval "unset _tuning_pg_status; return $_tuning_pg_status"
else
    _tuning_pg_main
fi
