#!/usr/bin/env bash
# Runs every test of FitKart Sync: the binding tests (Python and Kotlin against a real
# server), the doc tests, the Rust workspace (unit, server, end-to-end and the seeded
# simulation, several server processes on one database, the backup and restore drill), HTTP
# fuzzing of every route (scripts/fuzz.sh), the read-replica tests against a private primary
# and hot standby (scripts/test-replica.sh), the point-in-time recovery drill
# (scripts/pitr-drill.sh), the admin console's browser test in headless Chromium (installs
# chromium and chromium-driver with apt-get when missing; about 30 s to run), then the crash
# tests on their own (they restart PostgreSQL, which cuts every connection on the machine).
# Needs a PostgreSQL server at DATABASE_URL's host (default the local one, user postgres,
# trust auth); scripts/ensure-postgres.sh starts one. The replica tests and the drill run
# private clusters of their own on ports 5434-5439.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

bash scripts/ensure-postgres.sh

# The admin console's browser test drives headless Chromium through chromedriver.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# The workspace's libraries and binaries (the crash tests start the server binary, the binding
# tests load the ffi library): every script builds exactly this, so it compiles once.
cargo build --workspace --lib --bins
bash bindings/test.sh
# The benchmarks at scale, briefly: the small preset and a 1-second pass of fitkart-bench in
# the debug build, to prove the generator and the runner work (figures: scripts/bench.sh).
bash scripts/bench.sh ci
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast -E 'not binary(crash) and not binary(replica) and not binary(console_browser)'
  cargo nextest run -p fitkart-sync-server --test console_browser
  bash scripts/fuzz.sh
  bash scripts/test-replica.sh
  bash scripts/pitr-drill.sh
  cargo nextest run -p fitkart-e2e --test crash --test-threads 1
else
  cargo test --workspace --no-fail-fast -- --skip crash --skip replica --skip an_operator_works_through_the_console
  cargo test -p fitkart-sync-server --test console_browser
  bash scripts/fuzz.sh
  bash scripts/test-replica.sh
  bash scripts/pitr-drill.sh
  cargo test -p fitkart-e2e --test crash -- --test-threads 1
fi
