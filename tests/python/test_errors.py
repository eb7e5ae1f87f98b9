"""Each shardps::Code maps to its exception, with the server's message; bad
input raises and never crashes the interpreter."""

import builtins
import os
import subprocess
import sys

import numpy as np
import pytest

import shardps
from conftest import spec_text

EXPECTED = {
    "InvalidArgumentError": ("kInvalidArgument", ValueError),
    "NotFoundError": ("kNotFound", LookupError),
    "SizeMismatchError": ("kSizeMismatch", ValueError),
    "SpecMismatchError": ("kSpecMismatch", None),
    "TimeoutError": ("kTimeout", builtins.TimeoutError),
    "UnavailableError": ("kUnavailable", ConnectionError),
    "CorruptError": ("kCorrupt", None),
    "BusyError": ("kBusy", None),
    "IoError": ("kIoError", OSError),
    "UnimplementedError": ("kUnimplemented", NotImplementedError),
    "BadMessageError": ("kBadMessage", None),
    "InternalError": ("kInternal", None),
    "ClosedError": ("kClosed", None),
    "ResourceExhaustedError": ("kResourceExhausted", None),
    "PermissionDeniedError": ("kPermissionDenied", PermissionError),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_class_hierarchy(name):
    cls = getattr(shardps, name)
    code, builtin = EXPECTED[name]
    assert cls.code == code
    assert issubclass(cls, shardps.Error)
    if builtin is not None:
        assert issubclass(cls, builtin)


def test_not_found(client):
    with pytest.raises(shardps.NotFoundError, match="no tensor 'nope'") as e:
        client.push("nope", np.zeros(3, np.float32))
    assert e.value.code == "kNotFound"
    with pytest.raises(LookupError):
        client.pull("nope")
    with pytest.raises(shardps.NotFoundError, match="no table"):
        client.pull_rows("nope", np.array([1], np.uint64))


def test_size_mismatch(client):
    with pytest.raises(shardps.SizeMismatchError, match=r"\(4, 700\)"):
        client.push("w", np.zeros((700, 4), np.float32))  # right size, shape
    with pytest.raises(shardps.SizeMismatchError):
        client.push("b", np.zeros(4, np.float32))
    with pytest.raises(shardps.SizeMismatchError):
        client.pull("b", out=np.zeros(2, np.float32))
    with pytest.raises(shardps.SizeMismatchError):
        client.push_rows("emb", np.array([1, 2], np.uint64),
                         np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_,
                                   np.complex64, np.uint8])
def test_invalid_dtype(client, dtype):
    with pytest.raises(shardps.InvalidArgumentError, match="dtype"):
        client.push("b", np.zeros(3, dtype))


def test_invalid_out_and_ids(client):
    with pytest.raises(shardps.InvalidArgumentError, match="float32"):
        client.pull("b", out=np.zeros(3, np.float64))
    ro = np.zeros(3, np.float32)
    ro.setflags(write=False)
    with pytest.raises(shardps.InvalidArgumentError, match="read-only"):
        client.pull("b", out=ro)
    with pytest.raises(shardps.InvalidArgumentError, match="contiguous"):
        client.pull("b", out=np.zeros(6, np.float32)[::2])
    with pytest.raises(shardps.InvalidArgumentError, match=">= 0"):
        client.pull_rows("emb", np.array([1, -2], np.int64))
    with pytest.raises(shardps.InvalidArgumentError, match="uint64"):
        client.pull_rows("emb", np.array([1.0], np.float32))
    with pytest.raises(shardps.InvalidArgumentError, match="push_dtype"):
        shardps.Client("unused.toml", push_dtype="int8")
    with pytest.raises(shardps.InvalidArgumentError, match="timeout"):
        client.pull("b").wait(timeout=-1)


def test_unavailable_after_close(dense_cluster):
    c = shardps.Client(dense_cluster.cluster_file)
    c.close()
    for call in (lambda: c.push("b", np.zeros(3, np.float32)),
                 lambda: c.pull("b"), lambda: c.clock(), lambda: c.stats(),
                 lambda: c.clock_count, lambda: shardps.ModelView(c)):
        with pytest.raises(shardps.UnavailableError, match="client is closed"):
            call()


def test_connect_errors(tmp_shm):
    with pytest.raises(shardps.NotFoundError):
        shardps.Client(os.path.join(tmp_shm, "missing.toml"))


def test_spec_mismatch_between_segments_of_two_models(start_cluster):
    a = start_cluster(spec_text("pytest_a", {"w": (2000,)}))
    b = start_cluster(spec_text("pytest_b", {"w": (2000,)}))
    with shardps.Client(a.cluster_file) as ca, \
            shardps.Client(b.cluster_file) as cb:
        mixed = [ca.local_segments[0], cb.local_segments[1]]
    with pytest.raises(shardps.SpecMismatchError) as e:
        shardps.ModelView.from_segments(mixed)
    assert e.value.code == "kSpecMismatch" and str(e.value)


def test_timeout_while_a_bsp_clock_waits(start_cluster):
    c = start_cluster(spec_text("pytest_to", {"w": (2000,)},
                                consistency='mode = "bsp"\nworkers = 2'))
    with shardps.Client(c.cluster_file, worker=0) as w0, \
            shardps.Client(c.cluster_file, worker=1) as w1:
        h = w0.clock()
        with pytest.raises(shardps.TimeoutError) as e:
            h.wait(timeout=0.05)  # worker 1 has not clocked
        assert isinstance(e.value, builtins.TimeoutError)
        assert not h.done()
        w1.clock().wait()
        assert h.wait() is None
        assert w0.clock_count == 1


BAD_INPUT = r"""
import numpy as np, shardps, sys
c = shardps.Client(sys.argv[1])
bad = [
    lambda: c.push("w", None), lambda: c.push("w", "text"),
    lambda: c.push("w", np.zeros((0,), np.float32)),
    lambda: c.push("w", np.zeros((2800, 1, 1), np.float32)),
    lambda: c.push(None, np.zeros(3, np.float32)),
    lambda: c.pull("b", out=[0.0, 0.0, 0.0]),
    lambda: c.push_rows("emb", np.array([], np.uint64), np.zeros((0, 4), np.float32)).wait(),
    lambda: c.push_rows("emb", np.array([[1]], np.uint64), np.zeros((1, 4), np.float32)),
    lambda: c.pull("b").wait(timeout=float("nan")),
]
for f in bad:
    try:
        f()
        sys.exit("no error raised")
    except (shardps.Error, TypeError) as e:
        pass
c.close()
for f in bad:
    try:
        f()
    except (shardps.Error, TypeError):
        pass
print("survived")
"""


def test_bad_input_never_crashes_the_interpreter(dense_cluster):
    r = subprocess.run([sys.executable, "-c", BAD_INPUT,
                        dense_cluster.cluster_file],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "survived" in r.stdout
