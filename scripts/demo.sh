#!/usr/bin/env bash
# The main job: build shardps, start a local 2-shard cluster, train the
# logistic-regression example with 2 worker processes through it, show the
# shards' counters, and stop everything cleanly. Under a minute on 2 cores.
#
#   scripts/demo.sh              # build in ./build, default settings
#   BUILD_DIR=out STEPS=600 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
steps=${STEPS:-1000}
mode=${MODE:-auto}

echo "== building ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPS_WERROR=ON >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target shardps logistic_regression >/dev/null
shardps="$build/server/shardps"
trainer="$build/examples/logistic_regression"

work=$(mktemp -d "${TMPDIR:-/dev/shm}/shardps-demo.XXXXXX")
launcher=""
cleanup() {
  if [[ -n "$launcher" ]] && kill -0 "$launcher" 2>/dev/null; then
    kill -INT "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a 2-shard cluster (segments in $work)"
"$shardps" launch --spec examples/logistic_regression.toml --shards 2 \
  --storage "$work" --cluster-file "$work/cluster.toml" >"$work/launch.log" &
launcher=$!
for _ in $(seq 1 300); do
  grep -q ready "$work/launch.log" 2>/dev/null && break
  kill -0 "$launcher" 2>/dev/null || { cat "$work/launch.log"; exit 1; }
  sleep 0.1
done
grep -q ready "$work/launch.log" || { echo "cluster did not start"; exit 1; }
cat "$work/launch.log"

echo "== training with 2 workers ($steps steps each)"
pids=()
for w in 0 1; do
  "$trainer" --cluster "$work/cluster.toml" --worker "$w" --workers 2 \
    --steps "$steps" --mode "$mode" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

echo "== shard counters"
"$shardps" status --cluster "$work/cluster.toml"

echo "== stopping the cluster"
kill -INT "$launcher"
wait "$launcher"
launcher=""
echo "== demo finished"
