#!/usr/bin/env bash
# Trains a Fashion-MNIST MLP or CNN (MODEL=mlp|cnn) on a local cluster: S shards, W worker
# processes, each on its own slice of the training set, pushing gradients
# asynchronously. Worker 0 prints loss, test accuracy and samples/s per epoch,
# writes a CSV log and (with gnuplot) a PNG curve.
#
#   scripts/fashion_mnist.sh                       # 2 shards, 2 workers, 10 epochs
#   WORKERS=1 MODE=classic EPOCHS=5 scripts/fashion_mnist.sh
#   MODEL=cnn EPOCHS=8 scripts/fashion_mnist.sh
#   CONSISTENCY=bsp scripts/fashion_mnist.sh       # one averaged step per clock
#   OUT=runs/mlp scripts/fashion_mnist.sh          # where the log and PNG go
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
shards=${SHARDS:-2}
workers=${WORKERS:-2}
epochs=${EPOCHS:-10}
mode=${MODE:-auto}
model=${MODEL:-mlp}
consistency=${CONSISTENCY:-async}
out=${OUT:-fashion-mnist-run}
extra=(${EXTRA_ARGS:-})

echo "== building ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPS_WERROR=ON >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target shardps fashion_mnist >/dev/null
shardps="$build/cli/shardps"

source scripts/lib/cluster.sh
make_work_dir fmnist
work=$WORK

spec="examples/fashion_mnist/$model.toml"
if [[ "$consistency" != async ]]; then
  # The same model, with its workers' gradients combined per step.
  spec="$work/$model-$consistency.toml"
  cp "examples/fashion_mnist/$model.toml" "$spec"
  printf '\n[consistency]\nmode = "%s"\nworkers = %d\nreduce = "mean"\n' \
    "$consistency" "$workers" >>"$spec"
fi
echo "== starting $shards shard(s), $consistency"
start_cluster "$shardps" "$spec" "$shards" "$work"

mkdir -p "$out"
echo "== training the $model: $workers worker(s), $epochs epoch(s), mode $mode"
for w in $(seq 0 $((workers - 1))); do
  "$build/examples/fashion_mnist" --cluster "$work/cluster.toml" \
    --worker "$w" --workers "$workers" --epochs "$epochs" --mode "$mode" \
    --model "$model" \
    --log "$out/log.csv" "${extra[@]}" &
  WORKER_PIDS+=($!)
done
status=0
for p in "${WORKER_PIDS[@]}"; do wait "$p" || status=1; done
WORKER_PIDS=()
[[ $status -eq 0 ]] || { echo "a worker failed"; exit 1; }

if command -v gnuplot >/dev/null && [[ -s "$out/log.csv" ]]; then
  gnuplot <<GP
set terminal png size 900,500
set output "$out/curve.png"
set datafile separator ","
set key autotitle columnhead
set xlabel "seconds"
set ylabel "test accuracy"
set y2label "training loss"
set y2tics
set ytics nomirror
set grid
plot "$out/log.csv" using 2:4 with linespoints title "test accuracy", \
     "$out/log.csv" using 2:3 axes x1y2 with linespoints title "loss"
GP
  echo "== curve: $out/curve.png, log: $out/log.csv"
fi
