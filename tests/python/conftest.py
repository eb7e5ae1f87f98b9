"""Fixtures of the Python tests: real `shardps launch` clusters.

Run by ctest (test `python.pytest`) with PYTHONPATH at the built module and
SHARDPS_BINARY at the built CLI; by hand:
    PYTHONPATH=build/python SHARDPS_BINARY=build/cli/shardps \
        /usr/bin/python3 -m pytest tests/python -q
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import shardps  # noqa: F401  (fails fast when PYTHONPATH is wrong)


def _binary():
    path = os.environ.get("SHARDPS_BINARY")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("SHARDPS_BINARY does not name the shardps CLI")
    return path


def spec_text(model, tensors, *, block_floats=1024, lr=1.0, tables=(),
              consistency=""):
    """A model spec: sgd with `lr` (1.0 makes w_new = w - g exact for small
    integers), zero-initialised tensors {name: shape}, tables {name: dim}."""
    lines = [
        "[model]", f'name = "{model}"', 'storage = "/dev/shm/shardps"',
        f"block_floats = {block_floats}", "",
        "[optimizer]", 'kind = "sgd"', f"lr = {lr}", "",
    ]
    for name, shape in tensors.items():
        lines += ["[[tensor]]", f'name = "{name}"', f"shape = {list(shape)}",
                  'init = "zeros"', ""]
    for name, dim in dict(tables).items():
        lines += ["[[table]]", f'name = "{name}"', f"dim = {dim}",
                  "capacity = 1000", 'init = "zeros"', ""]
    if consistency:
        lines += ["[consistency]", consistency, ""]
    return "\n".join(lines)


class Cluster:
    """One `shardps launch` with its segments in a fresh directory."""

    def __init__(self, binary, spec, shards):
        self.dir = tempfile.mkdtemp(prefix="shardps-py.", dir="/dev/shm")
        self.spec = os.path.join(self.dir, "spec.toml")
        with open(self.spec, "w") as f:
            f.write(spec)
        self.cluster_file = os.path.join(self.dir, "cluster.toml")
        self.log = os.path.join(self.dir, "launch.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [binary, "launch", "--spec", self.spec, "--shards",
                 str(shards), "--storage", self.dir, "--cluster-file",
                 self.cluster_file],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(self.log) as f:
                if "ready" in f.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        text = open(self.log).read()
        self.stop()
        raise RuntimeError("the cluster did not start:\n" + text)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start_cluster():
    """start_cluster(spec, shards=2) -> Cluster; all stopped at teardown."""
    binary = _binary()
    clusters = []

    def start(spec, shards=2):
        clusters.append(Cluster(binary, spec, shards))
        return clusters[-1]

    yield start
    for c in clusters:
        c.stop()


# An async model spanning both shards: "w" is 3 blocks of 1024 floats.
DENSE = {"w": (4, 700), "b": (3,)}


@pytest.fixture(scope="module")
def dense_cluster():
    """A 2-shard async cluster of DENSE plus table "emb" (dim 4), shared by
    a test module (tests compare before/after, never absolute values)."""
    c = Cluster(_binary(), spec_text("pytest_dense", DENSE,
                                     tables={"emb": 4}), 2)
    yield c
    c.stop()


@pytest.fixture
def client(dense_cluster):
    c = shardps.Client(dense_cluster.cluster_file, request_timeout=10.0)
    yield c
    c.close()


@pytest.fixture
def tmp_shm():
    d = tempfile.mkdtemp(prefix="shardps-pyq.", dir="/dev/shm")
    yield d
    shutil.rmtree(d, ignore_errors=True)
