#!/usr/bin/env bash
# Compiles the generated Kotlin bindings with the Kotlin test and runs it on the JVM against
# the server at FITKART_TEST_SERVER_URL (bindings/test.sh starts one). Needs kotlinc-jvm and
# kotlinx-coroutines (bindings/ensure-tools.sh kotlin unpacks them into .tools/) and JNA.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
kotlin_home="${KOTLIN_HOME:-$repo/.tools/kotlinc}"
classpath="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar:/usr/share/java/jna.jar"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

"$kotlin_home/bin/kotlinc-jvm" -nowarn -classpath "$classpath" \
    "$repo/bindings/kotlin/com/fitkart/sync/fitkart_ffi.kt" "$repo/bindings/kotlin/test/ClientTest.kt" \
    -d "$build/test.jar" 2>&1 | grep -v '^warning' || true
test -f "$build/test.jar"
java -Djna.library.path="$target_dir/debug" \
    -classpath "$build/test.jar:$classpath:$kotlin_home/lib/kotlin-stdlib.jar" ClientTestKt
