#!/usr/bin/env bash
# Runs the read-replica tests (tests/tests/replica.rs) against a real PostgreSQL streaming
# replica: creates a private primary and a hot standby of it (initdb, then pg_basebackup -R)
# in a temporary directory on free loopback ports (5434-5439), runs the tests with
# DATABASE_URL on the primary and FITKART_TEST_REPLICA_URL on the standby, then stops and
# removes both clusters, also when a test fails or the script is interrupted. The shared
# PostgreSQL server is not touched. Needs the PostgreSQL server binaries (PG_BIN, default the
# newest /usr/lib/postgresql/*/bin) and the workspace's binaries built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/private-postgres.sh

root=$(mktemp -d /tmp/fitkart-replica.XXXXXX)
cleanup() {
    private_pg_stop "$root/standby"
    private_pg_stop "$root/primary"
    rm -rf "$root"
}
trap cleanup EXIT
private_pg_init "$root"

primary_port=$(private_pg_free_port)
private_pg_primary "$root/primary" "$primary_port"
standby_port=$(private_pg_free_port)
private_pg_standby "$root/standby" "$standby_port" "$primary_port"
if [ "$(private_pg_psql "$standby_port" -c 'SELECT pg_is_in_recovery()')" != "t" ]; then
    echo "the standby on port $standby_port is not in recovery" >&2
    exit 1
fi
echo "primary on $primary_port, hot standby on $standby_port" >&2

export DATABASE_URL="postgres://postgres@127.0.0.1:$primary_port/postgres"
export FITKART_TEST_REPLICA_URL="postgres://postgres@127.0.0.1:$standby_port/postgres"
# One test at a time: a test pauses the standby's replay, which every test would see.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace -E "binary(replica)" --test-threads 1 "$@"
else
    cargo test -p fitkart-e2e --test replica -- --test-threads 1 "$@"
fi
