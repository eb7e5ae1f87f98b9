#!/usr/bin/env bash
# Trains the Fashion-MNIST MLP across 3 hosts of the namespace bed
# (scripts/hostbed): one shard per host (CURVE on: the binds are not
# loopback), 2 trainers per host (6 workers, each on its own slice of the
# training set), bsp with the mean of the 6 gradients per step and
# apply = "block". Prints each epoch's loss, test accuracy and samples/s,
# then the time to TARGET accuracy. Tears the bed down on exit, also on
# failure. Needs root (namespaces); exits 77 saying so otherwise.
#
#   MODE=replica  every host runs `shardps replica`; the trainers read the
#                 model through ModelView: their host's shard mapped, the
#                 other two through the replica's copies (no pulls)
#   MODE=classic  the trainers pull the whole model every step
#
#   RATE=1gbit MODE=replica scripts/fashion_mnist_multihost.sh
#   RATE=1gbit MODE=classic EPOCHS=10 scripts/fashion_mnist_multihost.sh
#
# Other knobs: EPOCHS (10), BATCH (64 per worker), LR (Adam, 0.002),
# TARGET (0.87), TRAIN_LIMIT / TEST_LIMIT (0: all images), OUT (where
# log.csv goes), RATE (tc rate of every host link, both ways; empty: not
# shaped). SHARDPS and WORKER name prebuilt binaries (then nothing is
# built); otherwise BUILD_DIR (build) is built first.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${MODE:-replica}
epochs=${EPOCHS:-10}
batch=${BATCH:-64}
lr=${LR:-0.002}
target=${TARGET:-0.87}
rate=${RATE:-}
out=${OUT:-fashion-mnist-multihost-run}
data=${DATA:-/usr/share/datasets/fashion-mnist}
readonly hosts=3 per_host=2 port=5555
readonly replica_storage=/dev/shm/shardps-replica
workers=$((hosts * per_host))
[[ "$mode" == replica || "$mode" == classic ]] ||
  { echo "MODE must be replica or classic, not '$mode'" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
  echo "fashion_mnist_multihost: SKIPPED: the host bed needs root (Linux namespaces)" >&2
  exit 77
fi
[[ -f "$data/train-images-idx3-ubyte.gz" ]] || {
  echo "fashion_mnist_multihost: SKIPPED: no Fashion-MNIST in $data (apt-get install dataset-fashion-mnist)" >&2
  exit 77
}

if [[ -n "${SHARDPS:-}" && -n "${WORKER:-}" ]]; then
  shardps=$SHARDPS worker=$WORKER
else
  build=${BUILD_DIR:-build}
  echo "== building ($build)"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPS_WERROR=ON >/dev/null
  cmake --build "$build" --parallel "$(nproc)" --target shardps fashion_mnist >/dev/null
  shardps=$build/cli/shardps worker=$build/examples/fashion_mnist
fi
shardps=$(readlink -f "$shardps") worker=$(readlink -f "$worker")
hostbed=$PWD/scripts/hostbed

BED=""
PIDS=()
# Stops what was started (by pid), then takes the bed down: down kills
# whatever is left on the hosts and removes the namespaces, bridge and
# state. The bed's watchdog (--owner) does the same if this shell is killed.
teardown() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -z "$BED" ]] || "$hostbed" down "$BED" >/dev/null || rc=1
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Runs CMD on HOST in the background, output to LOG; its pid in PIDS.
on_host() {
  local host=$1 log=$2
  shift 2
  "$hostbed" exec "$BED" "$host" -- "$@" >"$log" 2>&1 &
  PIDS+=($!)
}

# Waits (up to 60 s) until LOG has a line matching PATTERN, while PID lives.
await_line() {
  local log=$1 pattern=$2 pid=$3 who=$4 _
  for _ in $(seq 1 600); do
    grep -q "$pattern" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$who did not start:" >&2
  cat "$log" >&2
  return 1
}

echo "== bed: $hosts hosts${rate:+, links shaped to $rate}"
set +e
made=$("$hostbed" up --hosts "$hosts" --name fmnist --tmpfs 512m \
  ${rate:+--rate "$rate"} --owner $$)
rc=$?
set -e
# A failed up has undone itself; 77: hostbed said what is missing.
[[ $rc -eq 0 ]] || exit "$rc"
BED=$(tail -n 1 <<<"$made")
shared=$BED/shared
logs=$shared/logs
mkdir -p "$logs" "$out"
out=$(readlink -f "$out")
rm -f "$out/log.csv"

# The model: the MLP's spec with its learning rate and bsp over 6 workers.
# wait_timeout: the first clock waits for the slowest worker to load the
# dataset, worker 0 for the others during its test pass.
spec=$shared/mlp.toml
sed "s/^lr = .*/lr = $lr/" examples/fashion_mnist/mlp.toml >"$spec"
printf '\n[consistency]\nmode = "bsp"\nworkers = %d\nreduce = "mean"\napply = "block"\nwait_timeout = 120.0\n' \
  "$workers" >>"$spec"

"$shardps" keygen --out "$shared/server" >/dev/null
"$shardps" keygen --out "$shared/client" >/dev/null
cp "$shared/client.pub" "$shared/authorized"
addrs=()
for h in $(seq 1 $hosts); do addrs+=("$("$hostbed" addr "$BED" "h$h")"); done
cluster=$shared/cluster.toml
"$shardps" cluster --spec "$spec" --shards "$hosts" \
  --hosts "$(IFS=,; echo "${addrs[*]}")" --port "$port" \
  --server-key-file "$shared/server.pub" -o "$cluster" >/dev/null

echo "== shards: one per host, CURVE on"
for h in $(seq 1 $hosts); do
  on_host "h$h" "$logs/launch-h$h.log" "$shardps" launch --spec "$spec" \
    --cluster-file "$cluster" --this-host "${addrs[$((h - 1))]}" \
    --curve-secret-key "$shared/server.key" --authorized-keys "$shared/authorized"
  await_line "$logs/launch-h$h.log" ready "${PIDS[-1]}" "the shard on h$h"
done

view=(--mode classic)
if [[ "$mode" == replica ]]; then
  echo "== replicas: one per host"
  for h in $(seq 1 $hosts); do
    on_host "h$h" "$logs/replica-h$h.log" "$shardps" replica --cluster "$cluster" \
      --spec "$spec" --storage "$replica_storage" --curve-key "$shared/client"
    await_line "$logs/replica-h$h.log" "replica ready" "${PIDS[-1]}" "the replica on h$h"
  done
  view=(--mode coprocessor --replica-storage "$replica_storage" --blocks-per-message 4)
fi

echo "== training: $workers workers ($per_host per host), $epochs epoch(s), $mode"
started=${#PIDS[@]}
for w in $(seq 0 $((workers - 1))); do
  on_host "h$((1 + w / per_host))" "$logs/worker-$w.log" "$worker" \
    --cluster "$cluster" --curve-key "$shared/client" --data "$data" \
    --worker "$w" --workers "$workers" --epochs "$epochs" --batch "$batch" \
    --train-limit "${TRAIN_LIMIT:-0}" --test-limit "${TEST_LIMIT:-0}" \
    --log "$out/log.csv" "${view[@]}"
done
# Worker 0's progress as it comes. The first worker to fail ends the run
# (in bsp the others would wait for its clocks until they time out).
tail -n +1 -f --pid "${PIDS[$started]}" "$logs/worker-0.log" &
PIDS+=($!)
status=0
running=("${PIDS[@]:$started:$workers}")
while [[ ${#running[@]} -gt 0 ]]; do
  wait -n -p finished "${running[@]}" || { status=1; break; }
  left=()
  for p in "${running[@]}"; do [[ $p == "$finished" ]] || left+=("$p"); done
  running=("${left[@]}")
done
if [[ $status -ne 0 ]]; then
  echo "a worker failed:" >&2
  tail -n 5 "$logs"/worker-*.log >&2
  exit 1
fi
wait "${PIDS[-1]}" 2>/dev/null || true  # the tail, once worker 0 is done
for w in $(seq 0 $((workers - 1))); do
  grep -h "replica reads" "$logs/worker-$w.log" || true
done

# Columns: epoch,seconds,loss,accuracy,samples_per_s (worker 0's rate).
awk -F, -v target="$target" -v workers="$workers" -v mode="$mode" \
  -v rate="${rate:-unshaped}" '
  NR > 1 { last_acc = $4; last_s = $2; n = NR - 1; sum_rate += $5
           if (!hit && $4 >= target) { hit = 1; hit_s = $2; hit_epoch = $1 } }
  END {
    printf "== %s, links %s: final accuracy %.4f after %d epoch(s), %.1f s; %.0f samples/s (worker 0 x %d)\n",
      mode, rate, last_acc, n, last_s, n ? sum_rate / n * workers : 0, workers
    if (hit) printf "== time to %.2f: %.1f s (epoch %d)\n", target, hit_s, hit_epoch
    else printf "== %.2f not reached in %d epoch(s)\n", target, n
  }' "$out/log.csv"
echo "== log: $out/log.csv"
