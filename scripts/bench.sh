#!/usr/bin/env bash
# Benchmarks at scale (docs/benchmarks.md): generates a preset into its own database, runs
# fitkart-bench against a live release server on it, then the device benchmarks, and writes
# the tables to target/bench-PRESET.md.
#
#   bash scripts/bench.sh medium            # 10K users, 3M step records (reuses the database)
#   bash scripts/bench.sh seed              # 100K users, 50M step records (an hour or more)
#   FITKART_BENCH_FRESH=1 bash scripts/bench.sh medium   # regenerate the database first
#   FITKART_BENCH_DEVICE=0 ...              # skip the device benchmarks
#   FITKART_BENCH_ARGS='--seconds 5 --only step_report' ...   # passed to fitkart-bench
#                                           # (seed: after --warmup 30, which they can override)
#   FITKART_BENCH_ARGS='--only leaderboard_rebuild' ...        # only the leaderboard rebuilds
#   FITKART_BENCH_ARGS='--trace /tmp/trace' ...   # every fixed-rate request's due time and latency
#   FITKART_BENCH_TCP=1 ...                 # a local PostgreSQL over TCP, not its Unix socket
#   bash scripts/bench.sh ci                # CI: small preset, debug build, 1 s per figure,
#                                           # into a throwaway database (proves it works),
#                                           # then once more against a server it did not start
#   FITKART_JWT_SECRET=S FITKART_BENCH_ARGS='--server-url http://HOST:PORT' ...
#                                           # a server already running on the preset's database
#                                           # with the secret S, e.g. on another machine
#                                           # (docs/benchmarks.md)
#   bash scripts/bench.sh drop              # drop the presets' databases (the seed's is 34 GB)
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-medium}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
bash scripts/ensure-postgres.sh
server_url=${DATABASE_URL%/*}
# A PostgreSQL on this machine is measured over its Unix socket, as docs/operations.md advises
# for a server on the database's host (docs/benchmarks.md, tuning step 13), when the socket
# takes this user; FITKART_BENCH_TCP=1 keeps the TCP URL, to compare.
host_port=${server_url##*@}
case "${host_port%%:*}" in
  127.0.0.1 | localhost)
    port=5432
    [ "$host_port" = "${host_port#*:}" ] || port=${host_port#*:}
    socket_url="${server_url%@*}@%2Fvar%2Frun%2Fpostgresql:$port"
    if [ "${FITKART_BENCH_TCP:-0}" != 1 ] && [ -S "/var/run/postgresql/.s.PGSQL.$port" ] &&
      psql "$socket_url/postgres" -tAc 'SELECT 1' >/dev/null 2>&1; then
      server_url=$socket_url
      echo "bench: PostgreSQL over its Unix socket in /var/run/postgresql (FITKART_BENCH_TCP=1: over TCP)" >&2
    fi
    ;;
esac
exists() {
  [ "$(psql "$server_url/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]
}
drop() {
  psql "$server_url/postgres" -qc "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"
}

if [ "$preset" = ci ]; then
  name="fitkart_bench_ci_$$"
  trap 'drop "$name"' EXIT
  cargo build --workspace --lib --bins # the same build as scripts/test.sh: no second feature set
  target/debug/fitkart-sync-server generate --preset small --database-url "$server_url/$name"
  target/debug/fitkart-sync-server verify-ledger --database-url "$server_url/$name"
  target/debug/fitkart-bench --database-url "$server_url/$name" --seconds 1 --clients 2 \
    --label "small, debug build (CI)" --out target/bench-ci.md
  # PostgreSQL runs on this machine in CI, so the table of CPU per request must be there.
  grep -q '^| `POST /steps/record`, one report that pays a coin | [0-9][0-9.]* | [0-9][0-9.]* |' target/bench-ci.md || {
    echo "target/bench-ci.md has no CPU time per step report" >&2
    exit 1
  }
  # A server the bench did not start (--server-url), as on a machine of its own: a read
  # measured through it, with the server's own secret.
  http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  secret="ci-remote-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  DATABASE_URL="$server_url/$name" FITKART_LISTEN="127.0.0.1:$http_port" FITKART_JWT_SECRET="$secret" \
    RUST_LOG=warn target/debug/fitkart-sync-server serve &
  remote=$!
  trap 'kill "$remote" 2>/dev/null; wait "$remote" 2>/dev/null; drop "$name"' EXIT
  FITKART_JWT_SECRET="$secret" target/debug/fitkart-bench --database-url "$server_url/$name" \
    --server-url "http://127.0.0.1:$http_port" --only profile --seconds 1 --clients 2 --goal-search 0 \
    --label "small, a server it did not start (CI)" --out target/bench-ci-remote.md
  grep -q 'not started by the bench' target/bench-ci-remote.md &&
    grep -q '^| `GET /me` (profile) | [0-9]*/s' target/bench-ci-remote.md || {
    echo "target/bench-ci-remote.md has no profile read through the server at --server-url" >&2
    exit 1
  }
  exit 0
fi

if [ "$preset" = drop ]; then
  for name in $(psql "$server_url/postgres" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'fitkart\\_bench\\_%'"); do
    echo "bench: dropping $name" >&2
    drop "$name"
  done
  exit 0
fi

case "$preset" in
  small | medium | seed) ;;
  *) echo "usage: $0 small|medium|seed|ci|drop" >&2; exit 2 ;;
esac
name="fitkart_bench_$preset"
out="target/bench-$preset.md"
cargo build --release -p fitkart-sync-server --bin fitkart-sync-server -p fitkart-e2e --bin fitkart-bench
if [ "${FITKART_BENCH_FRESH:-0}" = 1 ]; then
  drop "$name"
fi
if ! exists "$name"; then
  # Generated under another name and renamed once complete: a generation stopped part-way
  # (Ctrl-C, a full disk) leaves no database the next run would take for a whole one.
  partial="${name}_partial"
  if exists "$partial"; then
    echo "bench: dropping $partial, left by a generation that did not finish" >&2
    drop "$partial"
  fi
  time target/release/fitkart-sync-server generate --preset "$preset" --database-url "$server_url/$partial"
  # Generating writes gigabytes of WAL: without a checkpoint now, the one it calls for begins
  # during the bench's write runs (docs/benchmarks.md, tuning step 22).
  psql "$server_url/postgres" -qc CHECKPOINT
  psql "$server_url/postgres" -qc "ALTER DATABASE \"$partial\" RENAME TO \"$name\""
fi
warmup=()
if [ "$preset" = seed ]; then
  # The seed is larger than memory: each operation first runs uncounted for 30 s, so its pages
  # are in PostgreSQL's buffers when it is measured (docs/benchmarks.md, tuning step 18).
  warmup=(--warmup 30)
  buffers=$(psql "$server_url/postgres" -tAc "SELECT setting::bigint * 8192 / 1048576 FROM pg_settings WHERE name = 'shared_buffers'")
  if [ "$buffers" -lt 1024 ]; then
    echo "bench: shared_buffers is ${buffers} MB; docs/operations.md sizes it at a quarter of memory for a database of this size" >&2
  fi
fi
# shellcheck disable=SC2086
target/release/fitkart-bench --database-url "$server_url/$name" --label "$preset" --out "$out" \
  "${warmup[@]}" ${FITKART_BENCH_ARGS:-}
if [ "${FITKART_BENCH_DEVICE:-1}" = 1 ]; then
  { echo; echo '### Device (tests/benches/device.rs)'; echo; echo '```'; } >>"$out"
  cargo bench -p fitkart-e2e --bench device | tee -a "$out"
  echo '```' >>"$out"
fi
echo "report: $out"
