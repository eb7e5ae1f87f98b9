#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan in
# ./build-fuzz and runs each for a while from its seed corpus.
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   scripts/fuzz.sh --seconds 20     # shorter (CI)
#   scripts/fuzz.sh --seconds 300 segment_fuzzer   # one target, longer
#
# The seeds in fuzz/corpus/<target>/ are copied to a temp dir first, so a run
# never changes the repository. Exits non-zero when any target crashes,
# printing the reproducer; rerun it with build-fuzz/fuzz/<target> <file>.
# JOBS=N limits the build's parallelism, FUZZ_JOBS=N how many targets run
# at once (default for both: every core).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
only=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) only+=("$1"); shift ;;
  esac
done

build=${BUILD_DIR:-build-fuzz}
targets=(request_fuzzer table_rows_fuzzer model_spec_fuzzer
         cluster_file_fuzzer segment_fuzzer manifest_fuzzer csv_fuzzer
         queue_fuzzer)
[[ ${#only[@]} -gt 0 ]] && targets=("${only[@]}")

# -O1 without NDEBUG: asserts stay on, so a peer's bytes reaching one is a
# finding too. Tests, bench and examples are not needed here.
CC=clang CXX=clang++ cmake -S . -B "$build" -DSHARDPS_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DSHARDPS_WERROR=ON -DSHARDPS_BUILD_TESTS=OFF -DSHARDPS_BUILD_BENCH=OFF \
  -DSHARDPS_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --parallel "${JOBS:-$(nproc)}" --target "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/shardps-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
crashes="$build/crashes"
mkdir -p "$crashes"
# One target per core at a time; each writes its own log.
run_target() {
  local t=$1
  mkdir -p "$work/$t"
  cp -r "fuzz/corpus/$t/." "$work/$t/" 2>/dev/null || true
  # Reproducers (crash-*, leak-*, timeout-*, oom-*) land in $crashes/$t-*.
  local rc=0
  "$build/fuzz/$t" "$work/$t" -max_total_time="$seconds" \
    -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
    -artifact_prefix="$crashes/$t-" >"$work/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
}
lanes=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  while [[ $(jobs -rp | wc -l) -ge $lanes ]]; do wait -n || true; done
  echo "== $t: ${seconds}s"
  run_target "$t" &
done
wait

failed=()
for t in "${targets[@]}"; do
  if [[ "$(cat "$work/$t.rc" 2>/dev/null)" != 0 ]]; then
    echo "== $t crashed:"
    tail -n 60 "$work/$t.log"
    failed+=("$t")
  else
    echo "== $t: $(grep -E '^Done' "$work/$t.log" || echo 'no summary')"
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  for t in "${failed[@]}"; do
    for f in "$crashes/$t-"*; do
      [[ -e "$f" ]] && echo "  reproduce: $build/fuzz/$t $f" >&2
    done
  done
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${seconds}s each without a crash"
