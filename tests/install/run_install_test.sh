#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a
# tiny out-of-tree trainer against it with find_package(shardps).
#   run_install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -x "$work/prefix/bin/shardps"
test -f "$work/prefix/include/shardps/client.h"
test ! -e "$work/prefix/include/shardps/segment.h"  # internal: not installed
cmake -S "$source/tests/install/consumer" -B "$work/build" \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/consumer"
