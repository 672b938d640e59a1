#!/usr/bin/env bash
# Regenerates the Kotlin, Swift and Python bindings of fitkart-ffi into bindings/<language>.
# Run from anywhere: bash bindings/generate.sh
# --no-format keeps the output identical whether or not ktlint / swift-format are installed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$(uname -s)" in
    Darwin) library="$target_dir/debug/libfitkart_ffi.dylib" ;;
    *) library="$target_dir/debug/libfitkart_ffi.so" ;;
esac

# The same build as scripts/test.sh (every library and binary of the workspace, one feature
# set), so CI compiles the dependencies once; the generator is then run straight from it.
cargo build --workspace --lib --bins

for language in kotlin swift python; do
    out_dir="$repo/bindings/$language"
    mkdir -p "$out_dir"
    "$target_dir/debug/uniffi-bindgen" \
        generate --library "$library" --language "$language" --out-dir "$out_dir" --no-format
done

echo "bindings regenerated in $repo/bindings/{kotlin,swift,python}"
