#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the README example
# against it twice: through find_package(tracewatch) and through pkg-config.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/tests/install/consumer" -B "$work/consumer" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DEXAMPLE_SOURCE="$source/examples/quickstart.cpp" >/dev/null
cmake --build "$work/consumer" >/dev/null
test -x "$work/consumer/consumer"
echo "find_package(tracewatch): ok"

export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
c++ -o "$work/pkgconfig-consumer" "$source/examples/quickstart.cpp" \
  $(pkg-config --cflags --libs tracewatch)
test -x "$work/pkgconfig-consumer"
echo "pkg-config tracewatch: ok"
