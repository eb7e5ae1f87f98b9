"""ModelView: zero-copy read-only arrays that see every acknowledged push."""

import gc
import signal
import subprocess
import sys

import numpy as np
import pytest

import shardps


def test_view_sees_every_acknowledged_push(client):
    view = shardps.ModelView(client)
    w = view["w"]
    assert w.shape == (4, 700) and w.dtype == np.float32
    start = client.pull("w").wait()
    np.testing.assert_array_equal(w, start)
    updates = view.updates("w")
    for k in range(1, 6):
        client.push("w", np.full((4, 700), float(k), np.float32)).wait()
        # The same array object, no re-read: it is the live mapping.
        np.testing.assert_array_equal(w, start - sum(range(1, k + 1)))
    assert view.updates("w") == updates + 5 * 3  # 3 blocks per push
    np.testing.assert_array_equal(view.copy("w"), w)


def test_view_arrays_are_read_only(client):
    view = shardps.ModelView(client)
    w = view["w"]
    assert not w.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 1.0
    with pytest.raises(ValueError):
        np.add(w, 1, out=w)


def test_array_keeps_the_view_alive(client):
    a = shardps.ModelView(client)["b"]
    gc.collect()
    expected = client.pull("b").wait()
    np.testing.assert_array_equal(a, expected)  # mapping still there
    assert isinstance(a.base, shardps.ModelView)


def test_keys_contains_freshness(client):
    view = shardps.ModelView(client)
    assert view.keys() == ["w", "b"]
    assert "w" in view and "nope" not in view
    f = view.freshness("w")
    assert f["blocks_behind"] == 0 and f["replicas_running"]
    assert [b["block"] for b in f["blocks"]] == [0, 1, 2]
    assert all(b["local"] for b in f["blocks"])
    with pytest.raises(shardps.NotFoundError):
        view["nope"]
    with pytest.raises(KeyError.__mro__[1]):  # LookupError
        view.copy("nope")


def test_from_segments(client):
    view = shardps.ModelView.from_segments(client.local_segments)
    np.testing.assert_array_equal(view["b"], client.pull("b").wait())


FORCED_WRITE = r"""
import ctypes, sys, numpy as np, shardps
c = shardps.Client(sys.argv[1])
w = shardps.ModelView(c)["b"]
print("mapped", flush=True)
ctypes.memset(w.ctypes.data, 0, 4)  # past the read-only flag
print("wrote")
"""


def test_a_forced_write_faults_instead_of_corrupting(dense_cluster, client):
    before = client.pull("b").wait()
    r = subprocess.run([sys.executable, "-c", FORCED_WRITE,
                        dense_cluster.cluster_file],
                       capture_output=True, text=True, timeout=60)
    assert "mapped" in r.stdout and "wrote" not in r.stdout
    assert r.returncode == -signal.SIGSEGV, r.stderr
    np.testing.assert_array_equal(client.pull("b").wait(), before)
