#!/usr/bin/env bash
# Configures, builds and runs every test with ctest.
#
#   scripts/test.sh               # RelWithDebInfo build in ./build (shared with demo.sh);
#                                 # the multihost tests skip unless root
#   scripts/test.sh --sanitize    # AddressSanitizer + UBSan in ./build-asan
#   scripts/test.sh --tsan        # ThreadSanitizer in ./build-tsan: the unit
#                                 # tests labelled `concurrency` (client and
#                                 # servers as threads of one process)
#   scripts/test.sh --tsan-full   # ... and the multi-process ones too
#
# Flake hunting (combine with any of the above):
#   --repeat N     run every test up to N times; a test stops at its first
#                  failure, and the run fails (ctest --repeat until-fail:N)
#   --load K       keep K busy loops running beside the tests, so timing
#                  assumptions break here rather than on a loaded CI machine
#   -R REGEX       only the tests whose names match (ctest -R)
# e.g. scripts/test.sh --sanitize --repeat 30 --load 2
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

mode=plain
repeat=1
load=0
filter=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize|--tsan|--tsan-full) mode=${1#--} ;;
    --repeat|--load)
      [[ $# -ge 2 && "$2" =~ ^[0-9]+$ && "$2" -ge 1 ]] ||
        { echo "test.sh: $1 needs a positive count" >&2; usage; }
      [[ "$1" == --repeat ]] && repeat=$2 || load=$2
      shift ;;
    -R)
      [[ $# -ge 2 ]] || { echo "test.sh: -R needs a regex" >&2; usage; }
      filter=(-R "$2")
      shift ;;
    -h|--help) usage ;;
    *) echo "test.sh: unknown option '$1'" >&2; usage ;;
  esac
  shift
done

build=${BUILD_DIR:-build}
extra=()
targets=(all)
ctest_args=()
case "$mode" in
  sanitize)
    build=${BUILD_DIR:-build-asan}
    # The bench is not a test: its smoke run is in the plain build. The
    # examples' runs (Fashion-MNIST, CO2) train through the same client and
    # server code the integration tests drive, so the plain run has them.
    extra=(-DSHARDPS_SANITIZE=address,undefined -DSHARDPS_BUILD_BENCH=OFF
           -DSHARDPS_BUILD_EXAMPLES=OFF)
    # The multi-host tests (label multihost) run the same code as the
    # integration tests, across namespaces: the plain run has them, and
    # here they would only add to CI's time.
    ctest_args=(-LE multihost)
    ;;
  tsan|tsan-full)
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
    if [[ "$mode" == tsan-full ]]; then
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

# Busy loops, killed by pid however the run ends.
load_pids=()
stop_load() {
  if [[ ${#load_pids[@]} -gt 0 ]]; then
    kill "${load_pids[@]}" 2>/dev/null || true
    wait "${load_pids[@]}" 2>/dev/null || true
  fi
}
trap stop_load EXIT
for ((i = 0; i < load; i++)); do
  (while :; do :; done) &
  load_pids+=($!)
done

cd "$build"
if [[ "$repeat" -gt 1 ]]; then
  ctest_args+=(--repeat "until-fail:$repeat")
fi
ctest --output-on-failure --timeout 300 --parallel 2 "${ctest_args[@]}" "${filter[@]}"
