#!/usr/bin/env bash
# ctest: the streamed CO2 forecaster end to end (launch, feed, train, close)
# must beat the seasonal naive baseline and stop its feed. Skips (77) when
# the series is not installed.
#   co2_example_test.sh SHARDPS CO2_FORECAST SPEC
set -euo pipefail
shardps=$1 trainer=$2 spec=$3
data=${SHARDPS_DATA_DIR:-/usr/local/share/shardps/datasets}/co2.csv
[[ -f "$data" ]] || { echo "no $data: skipped"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/dev/shm}/shardps-co2-test.XXXXXX")
source "$(dirname "$0")/../../scripts/lib/cluster.sh"
trap 'stop_cluster; rm -rf "$work"' EXIT
start_cluster "$shardps" "$spec" 2 "$work"
"$trainer" --cluster "$work/cluster.toml" --data "$data" --shardps "$shardps" \
  --max-epochs 20 | tee "$work/out.txt"
grep -q "better" "$work/out.txt"
# The stream stopped with training: at most the queue's 8 slots (plus one
# batch in flight) were made and never used.
unused=$(sed -n 's/.*generated but never used \([0-9]*\).*/\1/p' "$work/out.txt")
[[ -n "$unused" && "$unused" -le 9 ]]
