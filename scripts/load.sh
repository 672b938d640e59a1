#!/usr/bin/env bash
# The load test (tests/benches/load.rs): builds the release server, then holds a constant
# arrival rate of mixed traffic against it on a fresh database for a bounded time and prints
# errors, p50/p99 latency, and the server's memory and connections at start and end.
#   FITKART_LOAD_RATE=100 FITKART_LOAD_SECONDS=20 FITKART_LOAD_USERS=50 bash scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
bash scripts/ensure-postgres.sh
cargo build --release -p fitkart-sync-server --bin fitkart-sync-server
cargo bench -p fitkart-e2e --bench load
