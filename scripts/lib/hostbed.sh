# The multi-host test bed: several "hosts" on this machine, each a set of
# Linux namespaces. Sourced by scripts/hostbed (the command tests,
# benchmarks and examples call); see docs/testing.md#the-multi-host-bed.
#
# A bed of N hosts is:
#   * a bridge spbr<ID> in the machine's network namespace, holding
#     10.X.Y.254/24, where 10.X.Y.0/24 is a private /24 this bed picked
#     (no interface or route on the machine used it) and ID is X and Y in
#     hex;
#   * per host hI: a network namespace shardps-<ID>-hI, joined to the bridge
#     by a veth pair (sp<ID>hI on the bridge, eth0 inside) with address
#     10.X.Y.I; and a holder process (`sleep infinity`) with its own UTS
#     namespace (hostname hI) and mount namespace, in which /dev/shm is a
#     private tmpfs and /etc/hosts a private copy naming h1..hN. Programs
#     are run on a host by entering the holder's namespaces, so every
#     process of one host shares its /dev/shm and no segment passes from one
#     host to another through a file.
#   * a state directory (printed by `up`) recording every id the bed made,
#     in the order it made them, so `down` removes exactly those, also after
#     a partial `up`. Its `shared/` directory is on the machine's own
#     filesystem, visible to every host: it stands for a shared mount (NFS)
#     on real machines.
#
# Everything here runs as root; hostbed_probe says what is missing (exit 77)
# when the machine does not allow it.

HOSTBED_ROOT=${HOSTBED_ROOT:-/tmp}
# One lock for every bed on the machine: the choice of a /24 and the
# /run/netns bind mount are shared between beds that start in parallel.
HOSTBED_LOCK=${HOSTBED_LOCK:-/run/shardps-hostbed.lock}
# Marker: /run/netns was mounted by a bed (not by someone else), so the
# last bed down unmounts it.
HOSTBED_NETNS_MARK=/run/shardps-hostbed.netns-made

hostbed_die() {
  echo "hostbed: $*" >&2
  exit 1
}

# Exits 77 with one line saying what is missing when this machine cannot
# run a bed.
hostbed_skip() {
  echo "hostbed: cannot run a bed here: $*" >&2
  exit 77
}

# CapEff has capability `bit` set.
hostbed_has_cap() {
  local hex
  hex=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
  (((0x$hex >> $1) & 1))
}

hostbed_probe() {
  local tool
  for tool in ip tc nsenter unshare flock setsid mountpoint; do
    command -v "$tool" >/dev/null 2>&1 || hostbed_skip "'$tool' is not installed"
  done
  hostbed_has_cap 21 || hostbed_skip "needs CAP_SYS_ADMIN (run as root)"
  hostbed_has_cap 12 || hostbed_skip "needs CAP_NET_ADMIN (run as root)"
  local err
  err=$(unshare --uts --mount --net sh -c \
    'ip link add hbprobe0 type bridge && ip link add hbprobe1 type veth peer name hbprobe2' 2>&1) ||
    hostbed_skip "cannot make namespaces, a bridge and a veth pair: ${err//$'\n'/ }"
}

# Parses a tc rate (e.g. 2gbit, 500mbit, 100kbit) into bits/s.
hostbed_rate_bits() {
  local r=${1,,} n unit
  [[ "$r" =~ ^([0-9]+)([kmg]?)(bit|bps)$ ]] || return 1
  n=${BASH_REMATCH[1]}
  unit=${BASH_REMATCH[2]}
  case "$unit" in k) n=$((n * 1000)) ;; m) n=$((n * 1000000)) ;; g) n=$((n * 1000000000)) ;; esac
  [[ ${BASH_REMATCH[3]} == bps ]] && n=$((n * 8))
  echo "$n"
}

# Appends "KIND VALUE" to the state's id log: down undoes it.
hostbed_record() {
  echo "$1 $2" >>"$STATE/ids"
}

hostbed_load() {
  STATE=$1
  [[ -f "$STATE/bed.env" ]] || hostbed_die "'$STATE' is not a bed's state directory"
  # shellcheck disable=SC1091
  . "$STATE/bed.env"
}

hostbed_check_host() {
  local host=$1
  [[ "$host" =~ ^h[0-9]+$ && -d "$STATE/$host" ]] ||
    hostbed_die "no host '$host' in this bed (hosts: $(hostbed_hosts_list))"
}

hostbed_hosts_list() {
  local i out=()
  for ((i = 1; i <= BED_HOSTS; i++)); do out+=("h$i"); done
  echo "${out[*]}"
}

# A free 10.X.Y.0/24: starts from a hash of the name and pid and steps on
# while any address or route on the machine mentions it. Call under the lock.
hostbed_pick_net() {
  local seed tries x y used
  seed=$(printf '%s.%s' "$1" "$$" | cksum | cut -d' ' -f1)
  used=$( (ip -4 -o addr show; ip -4 route show table all) 2>/dev/null)
  for ((tries = 0; tries < 4096; tries++)); do
    x=$((128 + (seed / 256) % 64))
    y=$((seed % 256))
    if ! grep -q "10\.$x\.$y\." <<<"$used" &&
      ! ip link show "spbr$(printf '%02x%02x' "$x" "$y")" >/dev/null 2>&1; then
      echo "$x $y"
      return 0
    fi
    seed=$((seed + 257))
  done
  return 1
}

# Shapes egress of `dev` (in netns `ns`, or the machine's if empty) to
# BED_RATE with tbf.
hostbed_shape() {
  local ns=$1 dev=$2 bits burst
  bits=$(hostbed_rate_bits "$BED_RATE")
  # 10 ms of traffic, at least 16 KiB: tbf needs a burst of at least
  # rate / HZ, or it cannot reach its rate.
  burst=$((bits / 8 / 100))
  ((burst < 16384)) && burst=16384
  ip ${ns:+-n "$ns"} link set dev "$dev" up
  tc ${ns:+-n "$ns"} qdisc add dev "$dev" root tbf rate "$BED_RATE" \
    burst "$burst" latency 50ms
}

# Starts host `i`'s holder and waits (up to 10 s) until its mounts are in.
hostbed_start_holder() {
  local i=$1 host=h$1 ns=$2 dir=$STATE/h$1 fifo pid line fd
  fifo=$dir/ready.fifo
  mkfifo "$fifo"
  # The holder's own mount namespace drops /run/netns: its copy of those
  # mounts would otherwise keep other beds' namespaces alive. setsid: its
  # own session, so a caller that kills its process group (a test's
  # ChildProcess) does not take the bed down with it.
  setsid nsenter --net="/run/netns/$ns" \
    unshare --uts --mount --propagation private sh -c '
      set -ex  # the trace in holder.log says which step failed
      hostname "$1"
      umount -l /run/netns 2>/dev/null || true
      mount -t tmpfs -o "size=$2,mode=1777" "tmpfs-$1" /dev/shm
      mount --bind "$3" /etc/hosts
      echo ready >"$4"
      exec sleep infinity' holder "$host" "$BED_TMPFS" "$STATE/hosts" "$fifo" \
    </dev/null >>"$dir/holder.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/holder.pid"
  hostbed_record pid "$pid"
  # Read-write open: does not block even if the holder dies first.
  exec {fd}<>"$fifo"
  line=""
  read -r -t 10 -u "$fd" line || true
  exec {fd}<&-
  rm -f "$fifo"
  [[ "$line" == ready ]] ||
    hostbed_die "host $host did not start: $(tr '\n' ' ' <"$dir/holder.log")"
}

hostbed_up() {
  local hosts=0 name=bed rate="" tmpfs=2g owner=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --hosts) hosts=${2:-}; shift ;;
      --name) name=${2:-}; shift ;;
      --rate) rate=${2:-}; shift ;;
      --tmpfs) tmpfs=${2:-}; shift ;;
      --owner) owner=${2:-}; shift ;;
      *) hostbed_die "up: unknown option '$1' (see scripts/hostbed --help)" ;;
    esac
    shift
  done
  [[ "$hosts" =~ ^[0-9]+$ && "$hosts" -ge 1 && "$hosts" -le 200 ]] ||
    hostbed_die "up: --hosts needs a count from 1 to 200, got '$hosts'"
  [[ "$name" =~ ^[A-Za-z0-9_-]{1,32}$ ]] ||
    hostbed_die "up: --name takes 1-32 letters, digits, '-' or '_', got '$name'"
  [[ -z "$rate" ]] || hostbed_rate_bits "$rate" >/dev/null ||
    hostbed_die "up: --rate takes a tc rate such as 2gbit or 500mbit, got '$rate'"
  [[ "$tmpfs" =~ ^[0-9]+[kmgKMG]?$ ]] ||
    hostbed_die "up: --tmpfs takes a size such as 2g or 512m, got '$tmpfs'"
  [[ -z "$owner" || "$owner" =~ ^[0-9]+$ ]] ||
    hostbed_die "up: --owner takes a pid, got '$owner'"
  hostbed_probe

  STATE=$(mktemp -d "$HOSTBED_ROOT/shardps-bed.$name.XXXXXX")
  : >"$STATE/ids"
  mkdir -m 1777 "$STATE/shared"
  # From here on, any failure undoes what was made.
  trap 'rc=$?; set +e; if [[ $rc -ne 0 ]]; then hostbed_down "$STATE" >/dev/null 2>&1; fi; exit $rc' EXIT
  set -e

  local lockfd net x y id bridge i ns veth
  exec {lockfd}>"$HOSTBED_LOCK"
  flock -w 60 "$lockfd" || hostbed_die "up: waited 60 s for $HOSTBED_LOCK"
  net=$(hostbed_pick_net "$name") || hostbed_die "up: no free 10.x.y.0/24 found"
  read -r x y <<<"$net"
  id=$(printf '%02x%02x' "$x" "$y")
  bridge=spbr$id
  cat >"$STATE/bed.env" <<EOF
BED_NAME=$name
BED_HOSTS=$hosts
BED_NET=10.$x.$y
BED_ID=$id
BED_BRIDGE=$bridge
BED_RATE=$rate
BED_TMPFS=$tmpfs
EOF
  # shellcheck disable=SC1091
  . "$STATE/bed.env"
  ip link add "$bridge" type bridge
  hostbed_record link "$bridge"
  # The bridge's address claims the /24 for this bed (the next bed's
  # hostbed_pick_net sees its route) and lets the machine reach the hosts.
  ip addr add "$BED_NET.254/24" dev "$bridge"
  ip link set "$bridge" up
  if ! mountpoint -q /run/netns; then
    mkdir -p /run/netns
    touch "$HOSTBED_NETNS_MARK"
  fi
  for ((i = 1; i <= hosts; i++)); do
    ns=shardps-$id-h$i
    ip netns add "$ns"
    hostbed_record netns "$ns"
  done
  flock -u "$lockfd"
  exec {lockfd}>&-

  {
    echo "127.0.0.1 localhost"
    for ((i = 1; i <= hosts; i++)); do echo "$BED_NET.$i h$i"; done
  } >"$STATE/hosts"
  for ((i = 1; i <= hosts; i++)); do
    ns=shardps-$id-h$i
    veth=sp${id}h$i
    mkdir "$STATE/h$i"
    echo "$ns" >"$STATE/h$i/netns"
    echo "$veth" >"$STATE/h$i/veth"
    echo "$BED_NET.$i" >"$STATE/h$i/addr"
    ip link add "$veth" type veth peer name "e$veth"
    hostbed_record link "$veth"
    ip link set "e$veth" netns "$ns"
    ip -n "$ns" link set "e$veth" name eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$BED_NET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip link set "$veth" master "$bridge"
    ip link set "$veth" up
    if [[ -n "$rate" ]]; then
      hostbed_shape "$ns" eth0  # host -> bridge
      hostbed_shape "" "$veth"  # bridge -> host
    fi
    hostbed_start_holder "$i" "$ns"
  done
  if [[ -n "$owner" ]]; then
    # Takes the bed down when its owner (a test process) dies without
    # calling down: a crash or a ctest timeout leaves nothing behind.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
                    exec "$2" down "$3"' watchdog "$owner" \
      "$HOSTBED_SELF" "$STATE" </dev/null >/dev/null 2>&1 &
    echo $! >"$STATE/watchdog.pid"
  fi
  set +e
  trap - EXIT
  echo "$STATE"
}

# Pids of every process in the host: in its network namespace or in its
# holder's mount namespace.
hostbed_host_pids() {
  local host=$1 ns holder netino="" mntino=""
  ns=$(<"$STATE/$host/netns")
  [[ -e "/run/netns/$ns" ]] && netino=$(stat -L -c %i "/run/netns/$ns")
  if [[ -f "$STATE/$host/holder.pid" ]]; then
    holder=$(<"$STATE/$host/holder.pid")
    mntino=$(stat -L -c %i "/proc/$holder/ns/mnt" 2>/dev/null || true)
    # The holder itself, even before its namespaces are in place.
    [[ -d "/proc/$holder" ]] && echo "$holder"
  fi
  [[ -n "$netino" || -n "$mntino" ]] || return 0
  # One stat for all processes: the namespace files' inodes name the
  # namespaces. (A zombie's are unreadable: it is dead already.)
  stat -L -c '%i %n' /proc/[0-9]*/ns/net /proc/[0-9]*/ns/mnt 2>/dev/null |
    awk -v net="${netino:--1}" -v mnt="${mntino:--1}" -v self="$$" '
      ($1 == net && $2 ~ /\/net$/) || ($1 == mnt && $2 ~ /\/mnt$/) {
        split($2, part, "/")
        if (part[3] != self) print part[3]
      }'
}

# SIGKILLs every process of the host until none is left (a dying process
# may have forked) and waits for them to die; up to 10 s.
hostbed_kill_host_processes() {
  local host=$1 round pids p alive
  for ((round = 0; round < 200; round++)); do
    pids=$(hostbed_host_pids "$host" | sort -u)
    [[ -z "$pids" ]] && return 0
    alive=0
    for p in $pids; do
      # A zombie is dead already: its parent reaps it.
      [[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" == Z ]] && continue
      kill -KILL "$p" 2>/dev/null && alive=1
    done
    ((alive)) || return 0
    sleep 0.05
  done
  echo "hostbed: processes of $host survived SIGKILL: $pids" >&2
  return 1
}

hostbed_kill_host() {
  hostbed_load "$1"
  hostbed_check_host "$2"
  local host=$2 holder
  holder=$(<"$STATE/$host/holder.pid")
  [[ -e "$STATE/$host/lost" ]] && return 0
  # Empty the tmpfs first, through the holder (the last process to go):
  # the programs lose their segments at once, as when a machine dies.
  # Then kill everything; the mount namespace, and with it the tmpfs,
  # goes with its last process.
  if [[ -d "/proc/$holder" ]]; then
    local p
    for p in $(hostbed_host_pids "$host"); do
      [[ "$p" != "$holder" ]] && kill -KILL "$p" 2>/dev/null
    done
    nsenter --target "$holder" --mount sh -c \
      'rm -rf /dev/shm/* /dev/shm/.[!.]* 2>/dev/null; umount -l /dev/shm' || true
  fi
  hostbed_kill_host_processes "$host" || return 1
  touch "$STATE/$host/lost"
}

hostbed_down() {
  local state=$1
  [[ -d "$state" ]] || return 0  # already down
  [[ -f "$state/ids" ]] || hostbed_die "'$state' is not a bed's state directory"
  STATE=$state
  # shellcheck disable=SC1091
  [[ -f "$STATE/bed.env" ]] && . "$STATE/bed.env"
  local watchdog kind value lockfd rc=0 host
  if [[ -f "$STATE/watchdog.pid" ]]; then
    watchdog=$(<"$STATE/watchdog.pid")
    # Not when the watchdog itself runs this down.
    [[ "$watchdog" != "$$" ]] && kill -KILL "$watchdog" 2>/dev/null
  fi
  for host in "$STATE"/h[0-9]*; do
    [[ -f "$host/netns" ]] || continue
    hostbed_kill_host_processes "${host##*/}" || rc=1
  done
  # Any recorded pid not yet gone (a holder of a host whose dir is
  # incomplete).
  while read -r kind value; do
    [[ "$kind" == pid ]] && kill -KILL "$value" 2>/dev/null
  done <"$STATE/ids"
  exec {lockfd}>"$HOSTBED_LOCK"
  flock -w 60 "$lockfd" || true
  # Reverse order of creation.
  while read -r kind value; do
    case "$kind" in
      link) ip link del "$value" 2>/dev/null ;;
      netns) ip netns del "$value" 2>/dev/null ;;
    esac
  done < <(tac "$STATE/ids")
  while read -r kind value; do
    case "$kind" in
      link) ip link show "$value" >/dev/null 2>&1 && {
        echo "hostbed: link $value is still there" >&2
        rc=1
      } ;;
      netns) [[ -e "/run/netns/$value" ]] && {
        echo "hostbed: netns $value is still there" >&2
        rc=1
      } ;;
    esac
  done <"$STATE/ids"
  # The last bed out unmounts the /run/netns a bed mounted.
  if [[ -f "$HOSTBED_NETNS_MARK" ]] && mountpoint -q /run/netns &&
    [[ -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
    umount /run/netns 2>/dev/null && umount /run/netns 2>/dev/null
    mountpoint -q /run/netns || rm -f "$HOSTBED_NETNS_MARK"
  fi
  flock -u "$lockfd" 2>/dev/null
  exec {lockfd}>&-
  if [[ $rc -eq 0 ]]; then
    rm -rf "$STATE"
  else
    echo "hostbed: kept $STATE for another down" >&2
  fi
  return $rc
}

hostbed_exec() {
  hostbed_load "$1"
  hostbed_check_host "$2"
  local host=$2
  shift 2
  [[ "${1:-}" == -- ]] && shift
  [[ $# -ge 1 ]] || hostbed_die "exec: no command given"
  [[ -e "$STATE/$host/lost" ]] && hostbed_die "exec: host $host was lost (kill-host)"
  local holder
  holder=$(<"$STATE/$host/holder.pid")
  # nsenter without --pid or --fork does not fork: it execs the command, so
  # the caller's child pid is the program's own.
  exec nsenter --target "$holder" --mount --uts --net --wd="$PWD" -- "$@"
}

hostbed_addr() {
  hostbed_load "$1"
  hostbed_check_host "$2"
  cat "$STATE/$2/addr"
}

hostbed_counters() {
  hostbed_load "$1"
  hostbed_check_host "$2"
  local veth rx tx
  veth=$(<"$STATE/$2/veth")
  # The bridge-side end's counters, crossed: what it sent the host
  # received. A veth pair counts the same bytes at both ends.
  rx=$(<"/sys/class/net/$veth/statistics/tx_bytes")
  tx=$(<"/sys/class/net/$veth/statistics/rx_bytes")
  echo "$rx $tx"
}
