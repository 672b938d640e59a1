#!/usr/bin/env bash
# Runs the FitKart sync server against the local PostgreSQL: the database (default `fitkart`)
# is created, migrated and seeded on start. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fitkart}
bash scripts/ensure-postgres.sh
# A debug build: it generates a JWT secret for the session when FITKART_JWT_SECRET is unset.
# Production runs a release build, which refuses to start without one.
exec cargo run -p fitkart-sync-server -- serve "$@"
