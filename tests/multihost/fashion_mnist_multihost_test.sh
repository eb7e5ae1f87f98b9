#!/usr/bin/env bash
# ctest: a short Fashion-MNIST run across 3 bed hosts
# (scripts/fashion_mnist_multihost.sh, MODE=replica: 6 workers, one shard
# per host, each host's replica; 6,000 training images, 3 epochs). Passes
# when the loss falls, the test accuracy beats chance by far (> 0.5) and
# every worker read the other hosts' shards through its host's replica,
# never behind the shards, ending at the last clock's version. Skips (77) without root or the dataset.
#   fashion_mnist_multihost_test.sh SHARDPS WORKER
set -euo pipefail
shardps=$1 worker=$2
script=$(dirname "$0")/../../scripts/fashion_mnist_multihost.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/shardps-fm-mh-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

set +e
SHARDPS=$shardps WORKER=$worker MODE=replica EPOCHS=3 TRAIN_LIMIT=6000 \
  TEST_LIMIT=1000 OUT=$work/run "$script" >"$work/output" 2>&1
rc=$?
set -e
cat "$work/output"
[[ $rc -ne 77 ]] || exit 77
[[ $rc -eq 0 ]] || { echo "FAILED: the run exited $rc"; exit 1; }

# Columns: epoch,seconds,loss,accuracy,samples_per_s
awk -F, 'NR == 2 { first = $3 } NR > 1 { last = $3; acc = $4; n++ }
  END { if (!(n == 3 && last < first && acc > 0.5)) {
          print "FAILED: " n " epoch(s), loss " first " -> " last ", accuracy " acc
          exit 1 } }' "$work/run/log.csv"

# "worker W: replica reads: R block reads through the host replica (B of T
# blocks per step), K behind the shard; copies at versions LO..HI".
# Each worker trains 1,000 images: 15 steps of 64 a epoch, 45 clocks in
# all. In bsp every block is updated once a clock, and Clock().Wait()
# returns only once the host's replica holds the clock: so no read may find
# a copy behind its shard, and the copies must end at version 45.
grep "replica reads" "$work/output" | awk -v clocks=45 '
  { reads = $5; behind = $(NF - 7); split($NF, v, /\.\./)
    if (!($2 in seen)) n++
    seen[$2] = 1
    if (!(reads > 0 && behind == 0 && v[1] == clocks && v[2] == clocks))
      bad = bad "\n  " $0 }
  END { if (n != 6 || bad != "") {
          print "FAILED: expected 6 workers reading current replica copies at version " clocks ", got " n + 0 ":" bad
          exit 1 } }'
echo "PASSED: the loss fell, accuracy beat chance, all 6 workers read through current host replicas"
