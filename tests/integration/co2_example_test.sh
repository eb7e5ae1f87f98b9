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
launcher=""
cleanup() {
  [[ -n "$launcher" ]] && kill -INT "$launcher" 2>/dev/null && wait "$launcher" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
"$shardps" launch --spec "$spec" --shards 2 --storage "$work" \
  --cluster-file "$work/cluster.toml" >"$work/launch.log" 2>&1 &
launcher=$!
for _ in $(seq 1 300); do
  grep -q ready "$work/launch.log" && break
  sleep 0.1
done
grep -q ready "$work/launch.log" || { cat "$work/launch.log"; exit 1; }
"$trainer" --cluster "$work/cluster.toml" --data "$data" --shardps "$shardps" \
  --max-epochs 20 | tee "$work/out.txt"
grep -q "better" "$work/out.txt"
# The stream stopped with training: at most the queue's 8 slots (plus one
# batch in flight) were made and never used.
unused=$(sed -n 's/.*generated but never used \([0-9]*\).*/\1/p' "$work/out.txt")
[[ -n "$unused" && "$unused" -le 9 ]]
