#!/usr/bin/env bash
# ctest: `shardps top` in a real terminal (a detached tmux pane, 80x40)
# against a 2-shard cluster under load: the frame shows both shards, it
# refreshes (the worker's clock changes between captures), `q` quits with
# status 0, Ctrl-C quits with 130, and the terminal is back in canonical
# mode with echo afterwards. Skips (77) when tmux is not installed.
#   top_tmux_test.sh SHARDPS CLOCK_WORKER
set -euo pipefail
shardps=$1 worker=$2
command -v tmux >/dev/null || {
  echo "skipped: tmux is not installed (scripts/install-deps.sh installs it)"
  exit 77
}

source "$(dirname "$0")/../../scripts/lib/cluster.sh"
make_work_dir top-tmux
# Our own tmux server (-L): never the user's, and killed on any exit.
pane=""
sock="shardps-top-test-$$"
tm() { tmux -L "$sock" -f "$WORK/tmux.conf" "$@"; }
trap 'tm kill-server 2>/dev/null || true; cleanup_work_dir' EXIT
# A pane whose program exited stays, so its last screen can be captured.
echo "set -g remain-on-exit on" >"$WORK/tmux.conf"

cat >"$WORK/spec.toml" <<'TOML'
[model]
name = "toptmux"
block_floats = 1024
[optimizer]
kind = "sgd"
lr = 0.01
[consistency]
mode = "ssp:1000"
workers = 1
[[tensor]]
name = "w"
shape = [4096]
init = "zeros"
TOML
start_cluster "$shardps" "$WORK/spec.toml" 2 "$WORK"
cluster=$WORK/cluster.toml
"$worker" --cluster "$cluster" --tensor w --worker 0 --clocks 100000000 \
  --sleep-ms 5 >/dev/null 2>"$WORK/worker.err" &
WORKER_PIDS+=($!)

fail() {
  echo "FAIL: $*" >&2
  echo "--- panes:" >&2
  tm list-panes -a -F '#{session_name}:#{window_index}.#{pane_index} dead=#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal}' >&2 || true
  ps -eo pid,ppid,stat,args | grep -E "[s]hardps top|defunct" >&2 || true
  echo "--- last capture:" >&2
  tm capture-pane -p -t "$pane" >&2 || true
  echo "--- worker stderr:" >&2
  cat "$WORK/worker.err" >&2 || true
  exit 1
}

# Polls `capture-pane` until CONDITION (a shell function over $screen)
# holds, for at most 15 s.
wait_screen() {
  local what=$1 cond=$2 deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    screen=$(tm capture-pane -p -t "$pane")
    "$cond" && return 0
    sleep 0.1
  done
  fail "$what"
}

# The first worker's clock in the captured frame ("" when not shown).
worker_clock() {
  awk '/^worker/ {w = 1; next} w && $1 == "0" {print $2; exit}' <<<"$screen"
}

# Shards 0 and 1 in the shard table with a push rate (the second frame on).
both_shards() {
  local rows
  rows=$(awk '/^shard +push/ {t = 1; next} t && /^$/ {exit}
              t && ($1 == "0" || $1 == "1") && $2 ~ /^[0-9.]+[kM]?$/ {n++}
              END {print n + 0}' <<<"$screen")
  grep -q "2 shards, 2 up" <<<"$screen" && [[ "$rows" == 2 ]] &&
    [[ -n "$(worker_clock)" ]]
}

clock_changed() {
  local now
  now=$(worker_clock)
  [[ -n "$now" && "$now" != "$first_clock" ]]
}

# top runs in a pane through run_top.sh, which writes top's exit status to
# a file and the terminal's modes after it (stty -a) to another. Ctrl-C
# reaches the whole foreground group, so the script traps it to live on.
# (Why not #{pane_dead_status}: tmux 3.3a here sometimes leaves the pane's
# child a zombie, the pane dead but its status never set.)
cat >"$WORK/run_top.sh" <<'SH'
#!/usr/bin/env bash
trap : INT
status_file=$1 stty_file=$2
shift 2
"$@"
status=$?
stty -a >"$stty_file"
echo "top exit $status"
echo "$status" >"$status_file.tmp" && mv "$status_file.tmp" "$status_file"
SH
chmod +x "$WORK/run_top.sh"

# Starts top in a new window named $1 with the status and stty files
# $WORK/$1.status and $WORK/$1.stty.
start_top() {
  local cmd="'$WORK/run_top.sh' '$WORK/$1.status' '$WORK/$1.stty'"
  cmd+=" '$shardps' top --cluster '$cluster' --interval 0.3"
  if tm has-session -t top 2>/dev/null; then
    tm new-window -d -t top: -n "$1" "$cmd"
  else
    tm new-session -d -s top -n "$1" -x 80 -y 40 "$cmd"
  fi
  pane=top:$1.0
}

# Waits until top in window $1 has exited and the pane is dead; sets
# $status to top's exit status.
wait_exit() {
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    if [[ -s "$WORK/$1.status" &&
      "$(tm display-message -p -t "$pane" '#{pane_dead}')" == 1 ]]; then
      status=$(<"$WORK/$1.status")
      return 0
    fi
    sleep 0.1
  done
  fail "top in window $1 did not exit after $2"
}

# The terminal is back in canonical mode with echo after top in window $1.
check_tty_restored() {
  grep -qE '(^| )icanon( |$)' "$WORK/$1.stty" ||
    fail "canonical mode not restored: $(cat "$WORK/$1.stty")"
  grep -qE '(^| )echo( |$)' "$WORK/$1.stty" ||
    fail "echo not restored: $(cat "$WORK/$1.stty")"
}

# 1. It refreshes, and q quits with status 0.
start_top quit
wait_screen "the frame never showed both shards and the worker" both_shards
first_clock=$(worker_clock)
wait_screen "the frame did not refresh (worker clock stayed $first_clock)" \
  clock_changed
tm send-keys -t "$pane" q
wait_exit quit q
[[ "$status" == 0 ]] || fail "top exited $status after q, not 0"
check_tty_restored quit

# 2. Ctrl-C (SIGINT) quits with 130 and restores the terminal too.
start_top interrupt
wait_screen "the second top never showed both shards" both_shards
tm send-keys -t "$pane" C-c
wait_exit interrupt Ctrl-C
[[ "$status" == 130 ]] || fail "top exited $status after Ctrl-C, not 130"
check_tty_restored interrupt
echo "ok: top refreshed, quit on q (0) and Ctrl-C (130), restored the tty"
