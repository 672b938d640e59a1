#!/usr/bin/env bash
# Sourced by test scripts that need PostgreSQL clusters of their own (a primary with a hot
# standby, a point-in-time recovery): they live in a temporary directory, listen on free
# loopback ports 5434-5439, and never touch the shared server on 5432.
#
#   private_pg_init ROOT            a directory owned by the postgres user for the clusters
#   private_pg_primary DIR PORT     initdb + start a primary (replication and WAL archiving
#                                   into DIR/../archive allowed)
#   private_pg_standby DIR PORT FROM_PORT   pg_basebackup of the primary on FROM_PORT into DIR,
#                                   started as a streaming hot standby
#   private_pg_stop DIR             stops a cluster (immediate), if it runs
#   private_pg_free_port            prints a free port in 5434-5439
#   private_pg_psql PORT SQL...     runs SQL as postgres on database postgres
#
# Runs the PostgreSQL programs as the postgres user when called as root (initdb refuses root).

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

private_pg_free_port() {
    local port
    for port in 5434 5435 5436 5437 5438 5439; do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port in 5434-5439 for a private PostgreSQL cluster" >&2
    return 1
}

private_pg_init() {
    local root=$1
    mkdir -p "$root/archive"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres: "$root"
    fi
}

# Settings shared by every private cluster: loopback only, its socket in its own directory,
# no fsync (a test cluster is thrown away), room for replication and archiving.
private_pg_settings() {
    local dir=$1 port=$2
    cat <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$(dirname "$dir")'
fsync = off
full_page_writes = on
shared_buffers = 32MB
max_connections = 100
wal_level = replica
max_wal_senders = 5
hot_standby = on
hot_standby_feedback = on
archive_mode = on
archive_command = 'test ! -f $(dirname "$dir")/archive/%f && cp %p $(dirname "$dir")/archive/%f'
EOF
}

private_pg_start() {
    local dir=$1
    as_postgres "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
}

private_pg_primary() {
    local dir=$1 port=$2
    as_postgres "$PG_BIN/initdb" -D "$dir" -U postgres -A trust --no-sync -E UTF8 \
        --locale=C.UTF-8 >/dev/null
    private_pg_settings "$dir" "$port" | as_postgres tee -a "$dir/postgresql.conf" >/dev/null
    private_pg_start "$dir"
}

private_pg_standby() {
    local dir=$1 port=$2 from_port=$3
    as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$from_port" -U postgres -D "$dir" \
        -R -X stream -c fast
    # The copied configuration is the primary's; later lines win. A standby does not archive.
    {
        private_pg_settings "$dir" "$port"
        echo "archive_mode = off"
    } | as_postgres tee -a "$dir/postgresql.conf" >/dev/null
    private_pg_start "$dir"
}

private_pg_stop() {
    local dir=$1
    if [ -f "$dir/postmaster.pid" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
    fi
}

private_pg_psql() {
    local port=$1
    shift
    psql -X -q -v ON_ERROR_STOP=1 -At "postgres://postgres@127.0.0.1:$port/postgres" "$@"
}
