#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for raleph's tests (installing PostgreSQL when missing)
# and prints `DATABASE_URL=postgres://...` on stdout, ready for `export "$(scripts/postgres.sh)"`.
# Everything else goes to stderr. Idempotent: a cluster that already runs is reused.
#
# The cluster lives under $RALEPH_CACHE_DIR/pg, listens on 127.0.0.1 only, and trusts every
# local connection (a test cluster: no password, nothing but loopback). Its database has a
# linguistic (ICU) default collation when the server supports one, so the tests catch any
# query that would sort by locale instead of by bytes.
#
# Env: RALEPH_CACHE_DIR     cache root (default ~/.cache/raleph)
#      RALEPH_PG_PORT       TCP port (default 54329)
#      RALEPH_PG_DATABASE   database to create (default raleph)
set -euo pipefail

CACHE="${RALEPH_CACHE_DIR:-$HOME/.cache/raleph}"
PORT="${RALEPH_PG_PORT:-54329}"
DATABASE="${RALEPH_PG_DATABASE:-raleph}"
PGDIR="$CACHE/pg"
SUPERUSER=postgres

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The newest installed server's bin directory (Debian keeps it off PATH).
find_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
        return
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

BINDIR="$(find_bindir)"
if [ -z "$BINDIR" ]; then
    log "no PostgreSQL server found: installing Debian's postgresql package"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir)"
    [ -n "$BINDIR" ] || die "postgresql is installed but initdb/pg_ctl were not found"
fi

# The server refuses to run as root: as root, run it as the `postgres` user (which the package
# creates). That user cannot enter a private home (/root is 0700), so then the cluster's files
# live in a directory of its own and $PGDIR points there.
if [ "$(id -u)" = 0 ]; then
    id "$SUPERUSER" >/dev/null 2>&1 || die "running as root but there is no '$SUPERUSER' user to run the server"
    RUN=(runuser -u "$SUPERUSER" --)
else
    RUN=()
fi
run() { "${RUN[@]}" "$@"; }

mkdir -p "$CACHE"
# A link left to a cluster directory that is gone: start over.
if [ -L "$PGDIR" ] && [ ! -e "$PGDIR" ]; then
    rm -f "$PGDIR"
fi
if [ "$(id -u)" = 0 ] && [ ! -e "$PGDIR" ]; then
    mkdir -p "$PGDIR"
    chown "$SUPERUSER:" "$PGDIR"
    if ! run test -w "$PGDIR"; then
        rmdir "$PGDIR"
        key="$(printf '%s' "$PGDIR" | sha256sum | cut -c1-12)"
        home="$(getent passwd "$SUPERUSER" | cut -d: -f6)"
        real="${home:-/var/lib/postgresql}/raleph-pg-$key"
        mkdir -p "$real"
        chown "$SUPERUSER:" "$real"
        ln -s "$real" "$PGDIR"
        log "the '$SUPERUSER' user cannot reach $CACHE: the cluster lives in $real ($PGDIR links to it)"
    fi
fi
mkdir -p "$PGDIR"
# The real path: the server user may not be able to follow a path through $CACHE.
PGDIR="$(readlink -f "$PGDIR")"
DATA="$PGDIR/data"
LOGFILE="$PGDIR/server.log"

if [ ! -f "$DATA/PG_VERSION" ]; then
    log "creating a cluster in $DATA"
    rm -rf "$DATA"
    run "$BINDIR/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust --encoding=UTF8 \
        --locale=C >"$PGDIR/initdb.log" 2>&1 || {
        cat "$PGDIR/initdb.log" >&2
        die "initdb failed"
    }
    run tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# raleph test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
max_connections = 200
EOF
fi

ready() { "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres; }

if run "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "the cluster already runs"
else
    log "starting the cluster on 127.0.0.1:$PORT"
    run touch "$LOGFILE"
    if ! run "$BINDIR/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 start >/dev/null; then
        tail -n 20 "$LOGFILE" >&2 || true
        die "the server did not start (is port $PORT taken? set RALEPH_PG_PORT)"
    fi
fi
for _ in $(seq 1 60); do
    ready && break
    sleep 0.5
done
ready || die "the server does not accept connections on 127.0.0.1:$PORT"

psql() { "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" "$@"; }
exists="$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")"
if [ "$exists" != 1 ]; then
    log "creating database $DATABASE"
    # A linguistic default collation when the server has ICU: the schema must not depend on it.
    psql -d postgres -c "CREATE DATABASE \"$DATABASE\" TEMPLATE template0 ENCODING 'UTF8'
        LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'" >/dev/null 2>&1 ||
        psql -d postgres -c "CREATE DATABASE \"$DATABASE\"" >/dev/null
fi

echo "DATABASE_URL=postgres://$SUPERUSER@127.0.0.1:$PORT/$DATABASE"
