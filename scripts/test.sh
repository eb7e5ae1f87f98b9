#!/usr/bin/env bash
# Configures, builds and runs every test with ctest.
#
#   scripts/test.sh               # RelWithDebInfo build in ./build (shared with demo.sh)
#   scripts/test.sh --sanitize    # AddressSanitizer + UBSan in ./build-asan
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
extra=()
if [[ "${1:-}" == "--sanitize" ]]; then
  build=${BUILD_DIR:-build-asan}
  extra=(-DSHARDPS_SANITIZE=address,undefined)
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPS_WERROR=ON "${extra[@]}"
cmake --build "$build" --parallel "$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 300 --parallel 2
