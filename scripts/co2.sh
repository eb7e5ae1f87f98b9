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
shardps="$build/cli/shardps"

source scripts/lib/cluster.sh
make_work_dir co2
work=$WORK
start_cluster "$shardps" examples/co2_forecast.toml 2 "$work"

"$build/examples/co2_forecast" --cluster "$work/cluster.toml" \
  --shardps "$shardps" --max-epochs "${MAX_EPOCHS:-60}"
