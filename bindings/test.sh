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

bash "$repo/bindings/ensure-tools.sh" $languages
# The library the bindings load and the server they talk to, from the one workspace build.
cargo build --workspace --lib --bins

# A server of our own: a fresh database and a free port on loopback.
source "$repo/scripts/test-server.sh"
start_test_server fitkart_bindings
export FITKART_TEST_SERVER_URL="$TEST_SERVER_URL"

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
