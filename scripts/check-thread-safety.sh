#!/usr/bin/env bash
# Builds every target with clang's thread-safety analysis on
# (-Wthread-safety, as errors; common/thread_annotations.h) and with
# -Werror, in ./build-tsa. Fails on any field marked GUARDED_BY touched
# without its lock, or any REQUIRES function called without it.
#
#   scripts/check-thread-safety.sh
#
# -O0: only the analysis matters here, and it runs in the front end.
# JOBS=N limits the build's parallelism (default: every core).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-tsa}
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O0" -DSHARDPS_THREAD_SAFETY=ON \
  -DSHARDPS_WERROR=ON >/dev/null
cmake --build "$build" --parallel "${JOBS:-$(nproc)}"
echo "thread-safety analysis: no findings"
