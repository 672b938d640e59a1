#!/usr/bin/env bash
# Runs every test of FitKart Sync: the binding tests, the doc tests and the Rust workspace
# (unit, server and end-to-end). Needs a PostgreSQL server at DATABASE_URL's host (default
# the local one, user postgres, trust auth); scripts/ensure-postgres.sh starts one.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

bash scripts/ensure-postgres.sh

bash bindings/test.sh
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
