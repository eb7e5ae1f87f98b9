#!/usr/bin/env bash
# Configures, builds and runs every test with ctest.
#
#   scripts/test.sh               # RelWithDebInfo build in ./build (shared with demo.sh)
#   scripts/test.sh --sanitize    # AddressSanitizer + UBSan in ./build-asan
#   scripts/test.sh --tsan        # ThreadSanitizer in ./build-tsan: the unit
#                                 # tests labelled `concurrency` (client and
#                                 # servers as threads of one process)
#   scripts/test.sh --tsan-full   # ... and the multi-process ones too
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
extra=()
targets=(all)
ctest_args=()
case "${1:-}" in
  --sanitize)
    build=${BUILD_DIR:-build-asan}
    # The bench is not a test: its smoke run is in the plain build.
    extra=(-DSHARDPS_SANITIZE=address,undefined -DSHARDPS_BUILD_BENCH=OFF)
    ;;
  --tsan|--tsan-full)
    build=${BUILD_DIR:-build-tsan}
    # Only what the concurrency tests run: no bench, no examples. TSan sees
    # the threads of one process only, so the in-process tests (client, io
    # thread, frontend and update pool together) are where it finds races;
    # the multi-process ones cost another ~3 minutes of building, so CI
    # runs --tsan.
    extra=(-DSHARDPS_SANITIZE=thread -DSHARDPS_BUILD_BENCH=OFF
           -DSHARDPS_BUILD_EXAMPLES=OFF)
    targets=(shardps_unit_tests)
    ctest_args=(-L '^concurrency$')
    if [[ "$1" == --tsan-full ]]; then
      targets+=(shardps_integration_tests)
      ctest_args=(-L concurrency)
    fi
    # halt_on_error: a race in a server process (a child of the test) kills
    # it, so the test fails instead of the report going unread. libzmq is
    # not instrumented; tests/tsan.supp says what is suppressed and why.
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 \
suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
    ;;
esac

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPS_WERROR=ON "${extra[@]}"
cmake --build "$build" --parallel "${JOBS:-$(nproc)}" --target "${targets[@]}"
cd "$build"
ctest --output-on-failure --timeout 300 --parallel 2 "${ctest_args[@]}"
