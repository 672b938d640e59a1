#!/usr/bin/env bash
# Builds fitkart-ffi and runs the binding tests against the real library.
# Exits non-zero when the build or any test fails. Run from anywhere: bash bindings/test.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

cargo build -p fitkart-ffi --lib
python3 "$repo/bindings/python/test_store.py"
