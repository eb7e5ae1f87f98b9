#!/usr/bin/env bash
# Trains the CO2 forecaster from a stream: a 2-shard cluster, a BatchQueue fed
# by `shardps feed`, and examples/co2_forecast consuming it (see the README's
# "Streaming training data"). Needs the series that scripts/install-deps.sh
# fetches into /usr/local/share/shardps/datasets/co2.csv.
#
#   scripts/co2.sh                    # build, launch, train, report, stop
#   MAX_EPOCHS=5 scripts/co2.sh       # a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
echo "== building ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDPS_WERROR=ON >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target shardps co2_forecast >/dev/null
shardps="$build/server/shardps"

work=$(mktemp -d "${TMPDIR:-/dev/shm}/shardps-co2.XXXXXX")
launcher=""
cleanup() {
  if [[ -n "$launcher" ]] && kill -0 "$launcher" 2>/dev/null; then
    kill -INT "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$shardps" launch --spec examples/co2_forecast.toml --shards 2 \
  --storage "$work" --cluster-file "$work/cluster.toml" >"$work/launch.log" &
launcher=$!
for _ in $(seq 1 300); do
  grep -q ready "$work/launch.log" 2>/dev/null && break
  kill -0 "$launcher" 2>/dev/null || { cat "$work/launch.log"; exit 1; }
  sleep 0.1
done
grep -q ready "$work/launch.log" || { echo "cluster did not start"; exit 1; }

"$build/examples/co2_forecast" --cluster "$work/cluster.toml" \
  --shardps "$shardps" --max-epochs "${MAX_EPOCHS:-60}"
