#!/usr/bin/env bash
# Trains the Fashion-MNIST MLP with deploy/slurm/shardps.sbatch on a real
# 3-node Slurm cluster on this machine (scripts/slurmbed; needs root):
# 3 shards, 3 host replicas, 6 trainers, CURVE on. Prints trainer 0's epochs.
#   EPOCHS=10 scripts/fashion_mnist_slurm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${EPOCHS:-10}
build=${BUILD_DIR:-build}
cmake --build "$build" --parallel "$(nproc)" --target shardps fashion_mnist >/dev/null
bed=$(scripts/slurmbed up --nodes 3 --owner $$ | tail -1)
trap 'scripts/slurmbed down "$bed" >/dev/null 2>&1' EXIT
shared=$bed/shared
start=$(date +%s)
scripts/slurmbed run "$bed" -- sbatch --wait --chdir="$shared" -o "$shared/job.out" \
  --export=ALL,SPEC="$PWD/examples/fashion_mnist/mlp.toml",SHARDPS_BIN="$(readlink -f "$build/cli/shardps")",TRAINER_BIN="$(readlink -f "$build/examples/fashion_mnist")",EPOCHS="$epochs",JOB_DIR="$shared/job" \
  deploy/slurm/shardps.sbatch >/dev/null || { cat "$shared/job.out"; exit 1; }
grep -E '^epoch|^worker 0: replica' "$shared/job/logs/trainer-0.log"
echo "job completed in $(($(date +%s) - start)) s (3 nodes, 6 trainers)"
