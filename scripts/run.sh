#!/usr/bin/env bash
# The main job: builds the FitKart sync server and the device walkthrough, starts the server
# on the local PostgreSQL (the database, default `fitkart`, is created, migrated and seeded on
# start), waits until it listens, then runs the walkthrough against it
# (core/examples/walkthrough.rs: a phone that signs up, records a week of steps offline,
# syncs, and places an order). The server keeps running for exploring; Ctrl-C stops it.
#
# Respects DATABASE_URL and FITKART_LISTEN (default 127.0.0.1:8080); arguments are passed to
# `fitkart-sync-server serve`. FITKART_SKIP_WALKTHROUGH=1 runs the server alone.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fitkart}
export FITKART_LISTEN=${FITKART_LISTEN:-127.0.0.1:8080}
bash scripts/ensure-postgres.sh

# Where the server is reached: one listening on every interface is reached on loopback.
host=${FITKART_LISTEN%:*}
port=${FITKART_LISTEN##*:}
case $host in
  0.0.0.0 | '') host=127.0.0.1 ;;
  '[::]') host=::1 ;;
  \[*\]) host=${host#[} && host=${host%]} ;;
esac
case $host in *:*) base_url="http://[$host]:$port" ;; *) base_url="http://$host:$port" ;; esac
listening() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if listening; then
  echo "Something already listens on $FITKART_LISTEN (another FitKart server?)." >&2
  echo "Stop it, or pick another address: FITKART_LISTEN=127.0.0.1:8081 scripts/run.sh" >&2
  exit 1
fi

# One build of both before anything starts, so the walkthrough does not wait on a compile.
cargo build -p fitkart-sync-server -p fitkart-core --bin fitkart-sync-server --example walkthrough
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

# A debug build: it generates a JWT secret for the session when FITKART_JWT_SECRET is unset.
# Production runs a release build, which refuses to start without one.
"$target_dir/debug/fitkart-sync-server" serve "$@" &
server=$!
stop_server() {
  if kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Creating, migrating and seeding a fresh database takes a moment.
for _ in $(seq 120); do
  if ! kill -0 "$server" 2>/dev/null; then
    status=0
    wait "$server" || status=$?
    echo "The server stopped (exit status $status); its messages above say why." >&2
    exit 1
  fi
  listening && break
  sleep 0.5
done
if ! listening; then
  echo "The server did not listen on $FITKART_LISTEN within 60 s." >&2
  exit 1
fi

if [ "${FITKART_SKIP_WALKTHROUGH:-0}" != "1" ]; then
  # The walkthrough finds the server through FITKART_LISTEN and waits for /readyz itself.
  if ! "$target_dir/debug/examples/walkthrough"; then
    echo "The walkthrough failed; the server keeps running for a look." >&2
  fi
fi

echo
echo "The server keeps running at $base_url (try: curl $base_url/readyz)."
echo "Press Ctrl-C to stop it."
wait "$server"
