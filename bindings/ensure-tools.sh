#!/usr/bin/env bash
# Installs what the binding tests need when it is missing: pytest (PyPI) for Python;
# kotlinc-jvm with kotlinx-coroutines (the npm package kotlin-compiler, unpacked into
# .tools/) and JNA (Debian's libjna-java) for Kotlin. Usage: ensure-tools.sh python kotlin
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kotlin_version=2.4.20

for language in "$@"; do
    case "$language" in
        python)
            python3 -c 'import pytest' 2>/dev/null || python3 -m pip install --quiet pytest
            ;;
        kotlin)
            if [ ! -f /usr/share/java/jna.jar ]; then
                apt-get update -qq && apt-get install -y -qq libjna-java >/dev/null
            fi
            if [ ! -x "$repo/.tools/kotlinc/bin/kotlinc-jvm" ]; then
                mkdir -p "$repo/.tools"
                (cd "$repo/.tools" && npm pack --silent "kotlin-compiler@$kotlin_version" >/dev/null \
                    && rm -rf kotlinc && mkdir kotlinc \
                    && tar -xzf "kotlin-compiler-$kotlin_version.tgz" -C kotlinc --strip-components=1 \
                    && rm "kotlin-compiler-$kotlin_version.tgz")
                chmod +x "$repo/.tools/kotlinc/bin/"*
            fi
            ;;
    esac
done
