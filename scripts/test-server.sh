#!/usr/bin/env bash
# Sourced by test scripts: `start_test_server NAME` starts the debug sync server on a fresh
# database (NAME_<pid>) and a free loopback port, waits until it is ready, and sets
#   TEST_SERVER_URL     http://127.0.0.1:<port>
#   TEST_DATABASE_URL   the server's database
#   TEST_SERVER_PID     the server's process id
# An EXIT trap stops the server and drops the database. Needs the server binary built
# (cargo build -p fitkart-sync-server) and PostgreSQL at DATABASE_URL's host.

start_test_server() {
    local name=$1
    local target_dir="${CARGO_TARGET_DIR:-target}"
    TEST_BASE_DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    TEST_DATABASE="${name}_$$"
    TEST_DATABASE_URL="${TEST_BASE_DATABASE_URL%/*}/$TEST_DATABASE"
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    TEST_SERVER_LOG=$(mktemp)
    DATABASE_URL="$TEST_DATABASE_URL" FITKART_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
        "$target_dir/debug/fitkart-sync-server" serve >"$TEST_SERVER_LOG" 2>&1 &
    TEST_SERVER_PID=$!
    trap stop_test_server EXIT
    TEST_SERVER_URL="http://127.0.0.1:$port"
    for _ in $(seq 1 120); do
        curl -fsS "$TEST_SERVER_URL/readyz" >/dev/null 2>&1 && return 0
        if ! kill -0 "$TEST_SERVER_PID" 2>/dev/null; then
            cat "$TEST_SERVER_LOG" >&2
            echo "the test server exited" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "the test server did not become ready" >&2
    return 1
}

stop_test_server() {
    kill -TERM "$TEST_SERVER_PID" 2>/dev/null || true
    wait "$TEST_SERVER_PID" 2>/dev/null || true
    psql "$TEST_BASE_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $TEST_DATABASE WITH (FORCE)" \
        >/dev/null 2>&1 || true
    rm -f "$TEST_SERVER_LOG"
}
