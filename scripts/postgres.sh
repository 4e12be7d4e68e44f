#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for multi-worker search tests and trials:
#   url=$(bash scripts/postgres.sh)        # start (or find running) and print the URL
#   bash scripts/postgres.sh stop          # stop it and delete its data directory
# Installs the Debian `postgresql` package when no server binaries are found and this runs as
# root. The cluster lives in $D2M_NAS_PG_DIR (default $TMPDIR/d2m-nas-postgres), listens on
# 127.0.0.1:$D2M_NAS_PG_PORT (default 55432) only, trusts local connections (test use only), and
# runs as a non-root user (postgres when started by root, else the caller). Idempotent: a second
# call prints the URL of the server that is already running.
set -euo pipefail

dir="${D2M_NAS_PG_DIR:-${TMPDIR:-/tmp}/d2m-nas-postgres}"
port="${D2M_NAS_PG_PORT:-55432}"
db_user="d2m"
db_name="d2m_nas"
url="postgresql://${db_user}@127.0.0.1:${port}/${db_name}"

find_bindir() {
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]] && { echo "$candidate"; return 0; }
    done
    if command -v pg_config >/dev/null 2>&1; then
        candidate="$(pg_config --bindir)"
        [[ -x "$candidate/initdb" ]] && { echo "$candidate"; return 0; }
    fi
    return 1
}

bindir="$(find_bindir || true)"
if [[ -z "$bindir" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "postgres.sh: PostgreSQL server binaries not found; run as root to install the Debian package" \
             "'postgresql', or install it yourself" >&2
        exit 1
    fi
    echo "postgres.sh: installing PostgreSQL (apt-get install -y postgresql)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
    bindir="$(find_bindir)"
fi

# Run server commands as a non-root user: PostgreSQL refuses to run as root.
if [[ "$(id -u)" == 0 ]]; then
    run_as=(runuser -u postgres --)
    owner=postgres
else
    run_as=()
    owner="$(id -un)"
fi

if [[ "${1:-}" == "stop" ]]; then
    if [[ -f "$dir/data/PG_VERSION" ]]; then
        "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
    exit 0
fi

if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null && [[ -f "$dir/data/PG_VERSION" ]]; then
    echo "$url"
    exit 0
fi

mkdir -p "$dir"
chown "$owner" "$dir"
chmod 700 "$dir"
if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    "${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U "$db_user" --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
fi
"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >&2 \
    || { tail -20 "$dir/server.log" >&2; exit 1; }
if ! "${run_as[@]}" "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$db_user" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | grep -q 1; then
    "${run_as[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$db_user" "$db_name" >&2
fi
echo "$url"
