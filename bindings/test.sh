#!/usr/bin/env bash
# Runs the binding tests: Python (pytest) and Kotlin (JVM), each calling the real library
# against a real sync server on a fresh PostgreSQL database that this script creates, starts
# and drops. Exits non-zero when the build or any test fails. Run from anywhere:
#   bash bindings/test.sh            # Python and Kotlin
#   FITKART_BINDINGS=python bash bindings/test.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
languages=${FITKART_BINDINGS:-python kotlin}
target_dir="${CARGO_TARGET_DIR:-$repo/target}"

bash "$repo/bindings/ensure-tools.sh" $languages
cargo build -p fitkart-ffi --lib
cargo build -p fitkart-sync-server --bin fitkart-sync-server

# A server of our own: a fresh database and a free port on loopback.
base_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database="fitkart_bindings_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
DATABASE_URL="${base_url%/*}/$database" FITKART_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
    "$target_dir/debug/fitkart-sync-server" serve >"$log" 2>&1 &
server=$!
cleanup() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    psql "$base_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    rm -f "$log"
}
trap cleanup EXIT
for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "the test server exited" >&2; exit 1; }
    sleep 0.5
done
export FITKART_TEST_SERVER_URL="http://127.0.0.1:$port"

for language in $languages; do
    case "$language" in
        python)
            echo "== Python binding tests"
            (cd "$repo/bindings/python" && python3 -m pytest -q test_store.py test_client.py)
            ;;
        kotlin)
            echo "== Kotlin binding tests"
            bash "$repo/bindings/kotlin/test.sh"
            ;;
        *) echo "unknown binding language: $language" >&2; exit 2 ;;
    esac
done
