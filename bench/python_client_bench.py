#!/usr/bin/python3
"""Python client against C++ client: Push/Pull/PushPull throughput of one
tensor of 1, 4, 16 and 64 MiB through one local shard, measured the same
way in the same run (a window of requests in flight, a warm-up, then a time
budget), beside the raw ZeroMQ ceiling between the same kinds of processes.

  PYTHONPATH=build/python /usr/bin/python3 bench/python_client_bench.py
  ... --sizes 1,4 --seconds 1 --directions push

The C++ figure and the ceiling come from `shardps-bench`'s hidden roles
(`__client ps|raw ...`, `__raw-sink`): the very loop the transport workload
runs (bench/drivers.cc), in its own process like the Python one. Prints
`ratio` = Python / C++ (target >= 0.9 for tensors of 1 MiB and more).
"""

import argparse
import collections
import os
import pathlib
import select
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
WARMUP_FRACTION = 0.2  # as bench/drivers.cc


def read_line_with(proc, needle, deadline_s):
    out = b""
    deadline = time.monotonic() + deadline_s
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
        for line in out.decode(errors="replace").splitlines():
            if needle in line:
                return line
    raise RuntimeError("no %r from %s:\n%s" % (needle, proc.args,
                                              out.decode(errors="replace")))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def python_load(shardps, cluster, direction, nbytes, inflight, seconds):
    """The Python twin of ShardpsLoad (bench/drivers.cc)."""
    floats = nbytes // 4
    grad = np.full(floats, 1e-9, np.float32)
    outs = [np.empty(floats, np.float32) for _ in range(inflight)]
    ways = 2 if direction == "pushpull" else 1
    with shardps.Client(cluster, request_timeout=60.0) as client:
        n = [0]

        def issue():
            out = outs[n[0] % inflight]
            n[0] += 1
            if direction == "push":
                return client.push("t", grad)
            if direction == "pull":
                return client.pull("t", out=out)
            return client.push_pull("t", grad, out=out)

        result = None
        for phase in (0, 1):
            budget = seconds * (WARMUP_FRACTION if phase == 0 else 1.0)
            begin = time.monotonic()
            end = begin + budget
            handles = collections.deque(issue() for _ in range(inflight))
            moved = 0
            while handles:
                handles.popleft().wait()
                moved += ways * nbytes
                if time.monotonic() < end:
                    handles.append(issue())
            result = moved / (time.monotonic() - begin)
    return result / 1e9


def bench_load(bench, kind, target, direction, nbytes, inflight, seconds):
    line = subprocess.run(
        [bench, "__client", kind, target, direction, str(nbytes),
         str(inflight), str(seconds), "1"], check=True, capture_output=True,
        text=True, timeout=300).stdout
    moved, _, took = line.split()[1:4]
    return int(moved) / float(took) / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1,4,16,64", help="MiB, comma-separated")
    p.add_argument("--directions", default="push,pull,pushpull")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--inflight", type=int, default=4)
    p.add_argument("--build", default=str(REPO / "build"))
    args = p.parse_args()
    import shardps
    shardps_cli = os.path.join(args.build, "cli", "shardps")
    bench = os.path.join(args.build, "bench", "shardps-bench")
    work = tempfile.mkdtemp(prefix="shardps-pybench.", dir="/dev/shm")
    sink = subprocess.Popen([bench, "__raw-sink", "tcp://127.0.0.1:*"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rows = []
    try:
        sink_ep = read_line_with(sink, "listening on", 30).split()[-1]
        for mib in [int(s) for s in args.sizes.split(",")]:
            nbytes = mib << 20
            # A server's replies pinned per client are bounded (256 MiB by
            # default): keep the window within it for big tensors.
            inflight = max(1, min(args.inflight, (128 << 20) // nbytes))
            spec = os.path.join(work, "t%d.toml" % mib)
            with open(spec, "w") as f:
                f.write('[model]\nname = "pybench%d"\n\n[optimizer]\n'
                        'kind = "sgd"\nlr = 1e-6\n\n[[tensor]]\nname = "t"\n'
                        'shape = [%d]\ninit = "zeros"\n' % (mib, nbytes // 4))
            cluster = os.path.join(work, "cluster%d.toml" % mib)
            launcher = subprocess.Popen(
                [shardps_cli, "launch", "--spec", spec, "--shards", "1",
                 "--storage", work, "--cluster-file", cluster],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                read_line_with(launcher, " ready: ", 60)
                for d in args.directions.split(","):
                    raw = bench_load(bench, "raw", sink_ep, d, nbytes,
                                     inflight, args.seconds)
                    cpp = bench_load(bench, "ps", cluster, d, nbytes,
                                     inflight, args.seconds)
                    py = python_load(shardps, cluster, d, nbytes, inflight,
                                     args.seconds)
                    rows.append((mib, d, inflight, py, cpp, py / cpp, raw))
                    print("%3d MiB %-8s %d in flight: python %.2f GB/s  c++ "
                          "%.2f GB/s  ratio %.2f  (raw zmq ceiling %.2f GB/s)"
                          % rows[-1], flush=True)
            finally:
                stop(launcher)
    finally:
        stop(sink)
        subprocess.run(["rm", "-rf", work])
    print("\n| size | op | in flight | Python GB/s | C++ GB/s | Python/C++ "
          "| raw ZeroMQ ceiling GB/s |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d MiB | %s | %d | %.2f | %.2f | %.2f | %.2f |" % r)
    low = [r for r in rows if r[5] < 0.9]
    print("\nall ratios >= 0.9" if not low else
          "\nbelow 0.9: %s" % ", ".join("%d MiB %s" % r[:2] for r in low))
    return 0


if __name__ == "__main__":
    sys.exit(main())
