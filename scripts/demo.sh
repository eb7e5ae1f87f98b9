#!/usr/bin/env bash
# The main job: build shardps, start a local 2-shard cluster, train the
# Fashion-MNIST MLP (784-256-128-10, Adam on the servers) with 2 worker
# processes through it for 2 epochs, show the shards' counters, and stop
# everything cleanly. About a minute on 2 cores, most of it the build.
#
# Without the dataset (Debian's dataset-fashion-mnist, which
# scripts/install-deps.sh installs) it trains the synthetic logistic
# regression example instead.
#
#   scripts/demo.sh              # build in ./build, default settings
#   BUILD_DIR=out EPOCHS=5 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
epochs=${EPOCHS:-2}
steps=${STEPS:-1000}
mode=${MODE:-auto}
data=/usr/share/datasets/fashion-mnist

echo "== building ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPS_WERROR=ON >/dev/null
cmake --build "$build" --parallel "$(nproc)" \
  --target shardps logistic_regression fashion_mnist shardps_python >/dev/null
shardps="$build/cli/shardps"

if [[ -f "$data/train-images-idx3-ubyte.gz" ]]; then
  spec=examples/fashion_mnist/mlp.toml
  what="the Fashion-MNIST MLP ($epochs epochs)"
else
  spec=examples/logistic_regression.toml
  what="logistic regression ($steps steps; no Fashion-MNIST in $data)"
fi

source scripts/lib/cluster.sh
make_work_dir demo
work=$WORK

echo "== starting a 2-shard cluster (segments in $work)"
start_cluster "$shardps" "$spec" 2 "$work"
cat "$work/launch.log"

echo "== training $what with 2 workers"
for w in 0 1; do
  if [[ "$spec" == *mlp.toml ]]; then
    "$build/examples/fashion_mnist" --cluster "$work/cluster.toml" \
      --worker "$w" --workers 2 --epochs "$epochs" --mode "$mode" &
  else
    "$build/examples/logistic_regression" --cluster "$work/cluster.toml" \
      --worker "$w" --workers 2 --steps "$steps" --mode "$mode" &
  fi
  WORKER_PIDS+=($!)
done
for p in "${WORKER_PIDS[@]}"; do wait "$p"; done
WORKER_PIDS=()

echo "== shard counters"
"$shardps" status --cluster "$work/cluster.toml"

echo "== stopping the cluster"
stop_cluster
grep -E "stopping|stopped" "$work/launch.log" || true
echo "== demo finished"
