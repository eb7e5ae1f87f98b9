#!/bin/sh
# deploy/systemd/: the units parse (`systemd-analyze verify`, which works
# without systemd as PID 1; any complaint on its stderr fails the test,
# since it reports unknown keys and bad values there but still exits 0)
# and carry the keys the restart policy and /dev/shm depend on. A copy
# with a misspelt key must fail, so the check can fail.
#
# Usage: check_systemd.sh SOURCE_DIR SHARDPS_BINARY
set -eu
src=$1
bin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$src"/deploy/systemd/*.service "$tmp"/
# verify checks that ExecStart's binary exists: use the one just built.
sed -i "s#/usr/local/bin/shardps#$bin#g" "$tmp"/*.service
ln -s shardps-shard@.service "$tmp/shardps-shard@0.service"
units="$tmp/shardps-shard@0.service $tmp/shardps-replica.service"

failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

if command -v systemd-analyze >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  if ! systemd-analyze verify $units 2>"$tmp/verify.err"; then
    fail "systemd-analyze verify exited non-zero"
  fi
  if [ -s "$tmp/verify.err" ]; then
    cat "$tmp/verify.err"
    fail "systemd-analyze verify complained"
  fi
  sed 's/^RestartSec=/RestartSecs=/' "$tmp/shardps-replica.service" \
    >"$tmp/misspelt.service"
  systemd-analyze verify "$tmp/misspelt.service" 2>"$tmp/bad.err" || true
  grep -q "Unknown key 'RestartSecs'" "$tmp/bad.err" ||
    fail "systemd-analyze verify accepted a misspelt key"
else
  echo "note: no systemd-analyze: checking the keys only"
fi

for unit in "$src/deploy/systemd/shardps-shard@.service" \
  "$src/deploy/systemd/shardps-replica.service"; do
  name=$(basename "$unit")
  for key in 'Restart=on-failure' 'RestartSec=' 'KillSignal=SIGTERM' \
    'TimeoutStopSec=' 'RemoveIPC=no' 'ReadWritePaths=.*/dev/shm' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'EnvironmentFile='; do
    grep -q "^$key" "$unit" || fail "$name lacks $key"
  done
  for key in DynamicUser PrivateDevices PrivateIPC 'RemoveIPC=yes'; do
    if grep -q "^$key" "$unit"; then
      fail "$name sets $key, which hides or empties /dev/shm"
    fi
  done
done
# The shard's final checkpoint needs time; the instance is the shard index.
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' \
  "$src/deploy/systemd/shardps-shard@.service")
[ "${stop:-0}" -ge 60 ] || fail "shard TimeoutStopSec ${stop:-?} < 60"
grep -q -- '--shard %i' "$src/deploy/systemd/shardps-shard@.service" ||
  fail "shardps-shard@.service does not serve shard %i"
grep -q '^ExecStartPost=.*shardps health' \
  "$src/deploy/systemd/shardps-shard@.service" ||
  fail "shardps-shard@.service does not probe with shardps health"

[ "$failed" -eq 0 ] && echo "all ok"
exit "$failed"
