#!/usr/bin/env bash
# ctest: a tiny Fashion-MNIST run (600 images, 3 epochs, 2 workers, 2 shards)
# through real processes; the loss must fall and the test accuracy beat
# chance (0.1) by a clear margin. Skips (77) without the dataset.
#   fashion_mnist_example_test.sh SHARDPS WORKER SPEC
set -euo pipefail
shardps=$1 worker=$2 spec=$3
data=/usr/share/datasets/fashion-mnist
[[ -f "$data/train-images-idx3-ubyte.gz" ]] || { echo "no dataset: skipped"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/dev/shm}/shardps-fm-test.XXXXXX")
source "$(dirname "$0")/../../scripts/lib/cluster.sh"
other=""
# When worker 0 fails, worker 1 must not outlive the test (it would keep
# retrying against stopped shards until its request timeout).
cleanup() {
  [[ -z "$other" ]] || kill "$other" 2>/dev/null || true
  stop_cluster
  rm -rf "$work"
}
trap cleanup EXIT
start_cluster "$shardps" "$spec" 2 "$work"
args=(--cluster "$work/cluster.toml" --workers 2 --epochs 3 --batch 32
      --train-limit 600 --test-limit 500 --log "$work/log.csv")
"$worker" "${args[@]}" --worker 1 &
other=$!
"$worker" "${args[@]}" --worker 0
wait "$other"
other=""
cat "$work/log.csv"
# Columns: epoch,seconds,loss,accuracy,samples_per_s
awk -F, 'NR == 2 { first = $3 } NR > 1 { last = $3; acc = $4 }
         END { if (!(last < first && acc > 0.5)) { print "loss " first " -> " last ", accuracy " acc; exit 1 } }' \
  "$work/log.csv"
