"""A local shardps cluster for the test_torch_*.py tests: `shardps launch`
on a spec written by the test, in the test's tmp_path, stopped (SIGINT, then
SIGKILL after a deadline) whatever the test's outcome."""

import contextlib
import os
import pathlib
import select
import signal
import subprocess
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def shardps_binary():
    if os.environ.get("SHARDPS_BINARY"):  # as conftest.py (ctest sets it)
        return os.environ["SHARDPS_BINARY"]
    build = pathlib.Path(os.environ.get("SHARDPS_BUILD_DIR", REPO / "build"))
    return str(build / "cli" / "shardps")


def _read_until_ready(proc, deadline_s):
    """Lines of the launcher's output up to its `ready` line; raises with
    everything it printed when it exits or the deadline passes first."""
    lines = []
    deadline = time.monotonic() + deadline_s
    buf = b""
    fd = proc.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("shardps launch not ready in %.0f s:\n%s" %
                               (deadline_s, b"".join(lines).decode()))
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError("shardps launch exited (%s):\n%s" %
                               (proc.wait(), (buf + b"".join(lines)).decode()))
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(line + b"\n")
            if b" ready: " in line:
                return b"".join(lines).decode()


@contextlib.contextmanager
def launch(spec_path, work_dir, shards=2):
    """Yields the cluster file's path of `shards` servers for spec_path."""
    work_dir = pathlib.Path(work_dir)
    cluster = work_dir / "cluster.toml"
    proc = subprocess.Popen(
        [shardps_binary(), "launch", "--spec", str(spec_path), "--shards",
         str(shards), "--storage", str(work_dir / "storage"),
         "--cluster-file", str(cluster)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    drain = None
    try:
        _read_until_ready(proc, 60)
        # Keep draining the servers' output so that they never block on a
        # full pipe.
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        drain.start()
        yield str(cluster)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if drain is not None:
            drain.join(10)
        proc.stdout.close()


def segments(work_dir, model):
    return sorted((pathlib.Path(work_dir) / "storage" / model).glob("*.seg"))
