#!/usr/bin/env bash
# deploy/slurm/shardps.sbatch on a real Slurm 22.05 cluster of 3 nodes
# (scripts/slurmbed: slurmd per host of the bed, slurmctld and munged on a
# fourth): 3 shards, 3 host replicas and 6 Fashion-MNIST trainers, CURVE on.
#   1. a short run: the job completes, the loss falls, the accuracy beats
#      chance, every trainer read through its node's replica, every step
#      stopped cleanly and the tmpfs is empty again;
#   2. a shard killed (-9) during training: its task restarts it on the
#      same node, it reopens its segment, the trainers resume and the job
#      completes;
#   3. the job cancelled (scancel) while training: every process stops
#      (SIGTERM), each shard writes a final checkpoint, the tmpfs is empty.
# Needs root (exit 77 otherwise, with the reason).
#   slurm_job_test.sh SHARDPS FASHION_MNIST
set -uo pipefail
shardps=$(readlink -f "$1")
trainer=$(readlink -f "$2")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
slurmbed=$root/scripts/slurmbed
data=/usr/share/datasets/fashion-mnist

[[ -r "$data/train-images-idx3-ubyte.gz" ]] ||
  { echo "SKIPPED: no Fashion-MNIST in $data (apt-get install dataset-fashion-mnist)"; exit 77; }
out=$("$slurmbed" up --nodes 3 --owner $$ 2>&1)
rc=$?
[[ $rc -eq 77 ]] && { echo "SKIPPED: ${out##*$'\n'}"; exit 77; }
[[ $rc -eq 0 ]] || { echo "FAILED: the Slurm bed did not come up: $out"; exit 1; }
bed=$(tail -1 <<<"$out")
trap '"$slurmbed" down "$bed" >/dev/null 2>&1' EXIT
shared=$bed/shared
left=""

fail() {
  echo "FAILED: $*"
  echo "--- job output"; cat "$shared"/job-*.out 2>/dev/null | tail -40
  echo "--- shard logs"; tail -n 8 "$shared"/*/logs/shard-*.log 2>/dev/null
  echo "--- daemons"; "$slurmbed" log "$bed" 2>/dev/null | tail -20
  exit 1
}
on_login() { "$slurmbed" run "$bed" -- "$@"; }
job_state() { on_login scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# Waits (up to $2 s) until `cond` (the rest) succeeds.
wait_for() {
  local what=$1 seconds=$2 i
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  fail "timed out after ${seconds}s waiting for $what${left:+ ($left)}"
}
# Submits the example script; prints the job id. NAME names its files.
submit() {
  local name=$1 epochs=$2 extra
  shift 2
  extra=$(IFS=,; echo "$*")
  on_login sbatch --parsable --chdir="$shared" -o "$shared/job-$name.out" \
    --export=ALL,SPEC="$root/examples/fashion_mnist/mlp.toml",SHARDPS_BIN="$shardps",TRAINER_BIN="$trainer",EPOCHS="$epochs",TRAINER_ARGS="--train-limit 6000 --test-limit 1000",JOB_DIR="$shared/$name",READY_TIMEOUT=60${extra:+,$extra} \
    "$root/deploy/slurm/shardps.sbatch"
}
# Pids of HOST's processes whose command line matches the regex (pgrep sees
# every host's: there is no pid namespace, so filter by network namespace).
host_pids() {
  "$slurmbed" exec "$bed" "$1" -- sh -c '
    me=$(readlink /proc/self/ns/net)
    for p in $(pgrep -f "$0"); do
      [ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$me" ] && echo "$p"
    done' "$2"
}
epochs_done() { grep -c '^epoch' "$shared/$1/logs/trainer-0.log" 2>/dev/null || echo 0; }
# No shardps process left on any node, and no file left in its tmpfs.
nodes_clean() {
  local h
  for h in h1 h2 h3; do
    if [[ -n "$(host_pids "$h" "^$shardps (serve|replica)|^$trainer ")" ]]; then
      left="shardps processes on $h"
      return 1
    fi
    left=$("$slurmbed" exec "$bed" "$h" -- sh -c 'ls -A /dev/shm')
    [[ -z "$left" ]] || { left="files on $h: $left"; return 1; }
  done
  return 0
}
# The first and last epoch's loss and the last accuracy of trainer 0.
check_learned() {
  local log=$shared/$1/logs/trainer-0.log first last acc
  first=$(grep '^epoch' "$log" | head -1 | awk '{print $4}')
  last=$(grep '^epoch' "$log" | tail -1 | awk '{print $4}')
  acc=$(grep '^epoch' "$log" | tail -1 | awk '{print $7}')
  [[ -n "$first" && -n "$acc" ]] || fail "$1: no epochs in $log"
  awk -v f="$first" -v l="$last" 'BEGIN {exit !(l < f)}' || fail "$1: loss did not fall ($first -> $last)"
  awk -v a="$acc" 'BEGIN {exit !(a > 0.3)}' || fail "$1: accuracy $acc is no better than chance"
  echo "$1: loss $first -> $last, test accuracy $acc"
}

echo "== 1. a short run"
job=$(submit short 3) || fail "sbatch refused the script"
wait_for "job $job to end" 120 bash -c "[[ \$('$slurmbed' run '$bed' -- scontrol show job $job | grep -o 'JobState=[A-Z]*') =~ COMPLETED|FAILED|CANCELLED ]]"
[[ $(job_state "$job") == COMPLETED ]] || fail "job $job ended $(job_state "$job")"
check_learned short
for w in 0 1 2 3 4 5; do
  grep -q "replica reads: [1-9]" "$shared/short/logs/trainer-$w.log" ||
    fail "trainer $w did not read through its node's replica"
done
for s in 0 1 2; do
  grep -q "stopped cleanly" "$shared/short/logs/shard-$s.log" || fail "shard $s did not stop cleanly"
done
wait_for "the nodes to be clean" 15 nodes_clean

echo "== 2. a shard killed during training"
job=$(submit kill 40) || fail "sbatch refused the script"
wait_for "training to start" 60 bash -c "[[ \$(grep -c '^epoch' '$shared/kill/logs/trainer-0.log' 2>/dev/null) -ge 1 ]]"
pid=$(host_pids h2 "^$shardps serve --slurm")
[[ "$pid" =~ ^[0-9]+$ ]] || fail "not one shard on h2: '$pid'"
kill -KILL "$pid"
killed_at=$(epochs_done kill)
wait_for "job $job to end" 180 bash -c "[[ \$('$slurmbed' run '$bed' -- scontrol show job $job | grep -o 'JobState=[A-Z]*') =~ COMPLETED|FAILED|CANCELLED ]]"
[[ $(job_state "$job") == COMPLETED ]] || fail "job $job ended $(job_state "$job") after the kill"
grep -q "restart 1 of 5 on h2" "$shared/kill/logs/shard-1.log" || fail "shard 1 was not restarted on h2"
grep -q "reopened" "$shared/kill/logs/shard-1.log" || fail "the restarted shard 1 did not reopen its segment"
[[ $(epochs_done kill) -eq 40 ]] || fail "trainer 0 did not finish its 40 epochs"
[[ $killed_at -lt 40 ]] || fail "the kill came after training ended"
check_learned kill
wait_for "the nodes to be clean" 15 nodes_clean

echo "== 3. the job cancelled"
job=$(submit cancel 100000 CHECKPOINT_DIR="$shared/cancel-ckpt",CHECKPOINT_EVERY=1h) || fail "sbatch refused the script"
wait_for "training to start" 60 bash -c "[[ \$(grep -c '^epoch' '$shared/cancel/logs/trainer-0.log' 2>/dev/null) -ge 1 ]]"
on_login scancel "$job"
wait_for "job $job to be cancelled" 60 bash -c "[[ \$('$slurmbed' run '$bed' -- scontrol show job $job | grep -o 'JobState=[A-Z]*') == JobState=CANCELLED ]]"
wait_for "every process to stop and the tmpfs to empty" 30 nodes_clean
for s in 0 1 2; do
  grep -q "stopped cleanly" "$shared/cancel/logs/shard-$s.log" || fail "shard $s did not stop cleanly on scancel"
  ls -d "$shared/cancel-ckpt/shard-$s-of-3"/2* >/dev/null 2>&1 || fail "shard $s wrote no final checkpoint"
done
echo "PASSED"
