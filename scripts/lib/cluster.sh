# Shared by the scripts that run a local cluster (demo, examples, their
# tests). Source it, then:
#
#   start_cluster SHARDPS SPEC SHARDS DIR [launch flags...]
#       runs `shardps launch` in the background with segments under DIR,
#       waits until it says "ready" (or fails, printing its log), and leaves
#       the cluster file at DIR/cluster.toml and the launcher's pid in
#       CLUSTER_PID.
#   stop_cluster
#       stops the launcher (and so every shard) if it is still running; safe
#       to call twice, and from an EXIT trap.
#   make_work_dir NAME
#       creates a fresh directory (on /dev/shm unless TMPDIR says otherwise)
#       in WORK, and installs an EXIT trap that kills the processes listed
#       in WORKER_PIDS, stops the cluster and removes WORK.

CLUSTER_PID=""
WORK=""
WORKER_PIDS=()

make_work_dir() {
  WORK=$(mktemp -d "${TMPDIR:-/dev/shm}/shardps-$1.XXXXXX")
  trap cleanup_work_dir EXIT
}

cleanup_work_dir() {
  local p
  for p in "${WORKER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_cluster
  [[ -n "$WORK" ]] && rm -rf "$WORK"
}

start_cluster() {
  local shardps=$1 spec=$2 shards=$3 dir=$4
  shift 4
  "$shardps" launch --spec "$spec" --shards "$shards" --storage "$dir" \
    --cluster-file "$dir/cluster.toml" "$@" >"$dir/launch.log" 2>&1 &
  CLUSTER_PID=$!
  local _
  for _ in $(seq 1 300); do
    grep -q ready "$dir/launch.log" 2>/dev/null && return 0
    kill -0 "$CLUSTER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the cluster did not start:" >&2
  cat "$dir/launch.log" >&2
  return 1
}

stop_cluster() {
  if [[ -n "$CLUSTER_PID" ]] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
    kill -INT "$CLUSTER_PID" 2>/dev/null || true
    wait "$CLUSTER_PID" 2>/dev/null || true
  fi
  CLUSTER_PID=""
}
