#!/usr/bin/env bash
# The main job: runs the FitKart sync server on the local PostgreSQL (the database, default
# `fitkart`, is created, migrated and seeded on start), then runs the device walkthrough
# (core/examples/walkthrough.rs: a phone that signs up, records a week of steps offline,
# syncs, orders) against it. The server keeps running for exploring; Ctrl-C stops it.
#
# Respects DATABASE_URL and FITKART_LISTEN (default 127.0.0.1:8080). Set
# FITKART_SKIP_WALKTHROUGH=1 to run the server alone.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fitkart}
export FITKART_LISTEN=${FITKART_LISTEN:-127.0.0.1:8080}
bash scripts/ensure-postgres.sh

# One build of both before anything starts, so the walkthrough does not wait on a compile.
cargo build -p fitkart-sync-server -p fitkart-core --bin fitkart-sync-server --example walkthrough

# A debug build: it generates a JWT secret for the session when FITKART_JWT_SECRET is unset.
# Production runs a release build, which refuses to start without one.
target_dir=${CARGO_TARGET_DIR:-target}
"$target_dir/debug/fitkart-sync-server" serve "$@" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

if [ "${FITKART_SKIP_WALKTHROUGH:-0}" != "1" ]; then
  # The walkthrough waits for /readyz itself (up to 60 s).
  if ! "$target_dir/debug/examples/walkthrough"; then
    echo "the walkthrough failed; the server is still running for a look (Ctrl-C stops it)" >&2
  fi
fi

echo
echo "The server is running at http://$FITKART_LISTEN (try: curl http://$FITKART_LISTEN/readyz)."
echo "Press Ctrl-C to stop it."
wait "$server"
