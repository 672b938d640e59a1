#!/usr/bin/env bash
# Point-in-time recovery drill, as docs/operations.md ("Back up and restore") describes it, on
# a private PostgreSQL cluster in a temporary directory (the shared server is not touched):
#
#   1. a primary that archives its WAL, and a base backup of it (pg_basebackup);
#   2. work after the backup, through the server binary: an account, an admin, coins;
#   3. a named restore point, then the mistake: the database is dropped;
#   4. recovery: the base backup plus the archived WAL, replayed up to the restore point;
#   5. checks: `fitkart-sync-server verify-ledger` passes on the recovered database and the
#      account has its coins.
#
# Removes everything it made, also on failure. Needs the server binary built
# (cargo build -p fitkart-sync-server) and the PostgreSQL server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/private-postgres.sh

bin=${CARGO_TARGET_DIR:-target}/debug/fitkart-sync-server
secret="pitr-drill-secret-pitr-drill-secret-0123456789"
admin_password="pitr-drill-admin-password"
root=$(mktemp -d /tmp/fitkart-pitr.XXXXXX)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    private_pg_stop "$root/recovered"
    private_pg_stop "$root/primary"
    rm -rf "$root"
}
trap cleanup EXIT
private_pg_init "$root"
say() { echo "pitr-drill: $*" >&2; }
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

# 1. A primary archiving its WAL into $root/archive, and its base backup.
port=$(private_pg_free_port)
private_pg_primary "$root/primary" "$port"
primary="postgres://postgres@127.0.0.1:$port"
as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$root/recovered" \
    -X stream -c fast
say "base backup taken"

# 2. Work after the base backup: the server creates its database, an account earns coins.
http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api="http://127.0.0.1:$http_port/api/v1"
DATABASE_URL="$primary/fitkart" FITKART_LISTEN="127.0.0.1:$http_port" FITKART_JWT_SECRET="$secret" \
    RUST_LOG=warn "$bin" serve &
server_pid=$!
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
user_id=$(curl -fsS -X POST "$api/auth/register" -H 'content-type: application/json' \
    -d '{"email":"walker@example.com","password":"pitr-drill-walker-pw","display_name":"Walker"}' |
    json '["user"]["id"]')
DATABASE_URL="$primary/fitkart" FITKART_ADMIN_PASSWORD="$admin_password" \
    "$bin" create-admin --email admin@example.com >/dev/null
admin_token=$(curl -fsS -X POST "$api/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@example.com\",\"password\":\"$admin_password\"}" | json '["access_token"]')
curl -fsS -X POST "$api/admin/users/$user_id/wallet/adjust" -H 'content-type: application/json' \
    -H "authorization: Bearer $admin_token" \
    -d '{"amount":1234,"reason":"pitr drill"}' >/dev/null
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=
say "account $user_id credited 1234 coins after the base backup"

# 3. A restore point, then the mistake, then the WAL segment holding both is archived.
private_pg_psql "$port" -c "SELECT pg_create_restore_point('before_the_mistake')" >/dev/null
private_pg_psql "$port" -c "DROP DATABASE fitkart" >/dev/null
segment=$(private_pg_psql "$port" -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 200); do
    [ -f "$root/archive/$segment" ] && break
    sleep 0.1
done
[ -f "$root/archive/$segment" ] || { say "WAL segment $segment was not archived"; exit 1; }
say "database dropped after the restore point; WAL archived up to $segment"

# 4. Recovery on another port: the base backup replays the archive up to the restore point.
recovered_port=$(private_pg_free_port)
{
    private_pg_settings "$root/recovered" "$recovered_port"
    echo "archive_mode = off"
    echo "restore_command = 'cp $root/archive/%f %p'"
    echo "recovery_target_name = 'before_the_mistake'"
    echo "recovery_target_action = 'promote'"
} | as_postgres tee -a "$root/recovered/postgresql.conf" >/dev/null
as_postgres touch "$root/recovered/recovery.signal"
private_pg_start "$root/recovered"
for _ in $(seq 1 300); do
    [ "$(private_pg_psql "$recovered_port" -c 'SELECT pg_is_in_recovery()')" = "f" ] && break
    sleep 0.1
done
[ "$(private_pg_psql "$recovered_port" -c 'SELECT pg_is_in_recovery()')" = "f" ] ||
    { say "recovery did not finish"; exit 1; }

# 5. The recovered database is whole and the account has its coins.
recovered="postgres://postgres@127.0.0.1:$recovered_port/fitkart"
DATABASE_URL="$recovered" RUST_LOG=error "$bin" verify-ledger
coins=$(psql -X -At "$recovered" -c \
    "SELECT w.available_coins FROM wallets w JOIN users u ON u.id = w.user_id
     WHERE u.email = 'walker@example.com'")
if [ "$coins" != "1234" ]; then
    say "the recovered account has '$coins' coins, expected 1234"
    exit 1
fi
say "recovered to the restore point: the database is back, verify-ledger passes, 1234 coins"
