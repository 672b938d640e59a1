#!/usr/bin/env bash
# Builds FitKartFFI.xcframework (static libraries of fitkart-ffi for iOS devices, the iOS
# simulator and macOS, with the generated C header) next to Package.swift. macOS only: needs
# Xcode's command-line tools and the Rust targets below (rustup target add ...).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
cd "$repo"

[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh runs on macOS only" >&2; exit 2; }

targets="aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin"
for target in $targets; do
    cargo build -p fitkart-ffi --lib --release --target "$target"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/headers" "$work/ios-sim" "$work/macos"
cp "$here/FitKartFFI.h" "$work/headers/"
cp "$here/FitKartFFI.modulemap" "$work/headers/module.modulemap"
lipo -create "$target_dir/aarch64-apple-ios-sim/release/libfitkart_ffi.a" \
    "$target_dir/x86_64-apple-ios/release/libfitkart_ffi.a" -output "$work/ios-sim/libfitkart_ffi.a"
lipo -create "$target_dir/aarch64-apple-darwin/release/libfitkart_ffi.a" \
    "$target_dir/x86_64-apple-darwin/release/libfitkart_ffi.a" -output "$work/macos/libfitkart_ffi.a"

rm -rf "$here/FitKartFFI.xcframework"
xcodebuild -create-xcframework \
    -library "$target_dir/aarch64-apple-ios/release/libfitkart_ffi.a" -headers "$work/headers" \
    -library "$work/ios-sim/libfitkart_ffi.a" -headers "$work/headers" \
    -library "$work/macos/libfitkart_ffi.a" -headers "$work/headers" \
    -output "$here/FitKartFFI.xcframework"
echo "built $here/FitKartFFI.xcframework"
