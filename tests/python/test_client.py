"""Client: exact push/pull results, conversions, buffer lifetimes, close."""

import gc
import os
import signal

import numpy as np
import pytest

import shardps
from conftest import spec_text


def pull(client, name):
    return client.pull(name).wait()


def test_push_then_pull_is_exact_across_shards(client):
    before = pull(client, "w")
    g = np.arange(2800, dtype=np.float32).reshape(4, 700) - 1400
    assert client.push("w", g).wait() is None
    after = pull(client, "w")
    assert after.shape == (4, 700) and after.dtype == np.float32
    np.testing.assert_array_equal(after, before - g)  # sgd lr=1, integers


def test_flat_gradient_and_out_buffer(client):
    before = pull(client, "b")
    client.push("b", np.array([1, 2, 3], np.float32)).wait()
    out = np.zeros(3, np.float32)
    got = client.pull("b", out=out).wait()
    np.testing.assert_array_equal(got, before - [1, 2, 3])
    assert np.shares_memory(got, out)  # filled in place, not copied


def test_push_pull_returns_the_updated_tensor(client):
    before = pull(client, "w")
    g = np.full(2800, 2.0, np.float32)
    got = client.push_pull("w", g).wait()
    np.testing.assert_array_equal(got, before - 2.0)
    assert got.shape == (4, 700)


def test_float64_and_float16_gradients_are_converted(client):
    before = pull(client, "b")
    client.push("b", np.array([0.5, 1.0, 2.0], np.float64)).wait()
    client.push("b", np.array([0.5, 1.0, 2.0], np.float16)).wait()
    np.testing.assert_array_equal(pull(client, "b"),
                                  before - np.float32([1, 2, 4]))


def test_non_contiguous_float32_is_copied_correctly(client):
    before = pull(client, "b")
    g = np.arange(6, dtype=np.float32)[::2]  # 0, 2, 4: a strided view
    client.push("b", g).wait()
    np.testing.assert_array_equal(pull(client, "b"), before - [0, 2, 4])


def test_rows_push_and_pull_exact(client):
    ids = np.array([3, 11, 3], np.int64)  # id 3 twice: summed
    before = client.pull_rows("emb", np.array([3, 11], np.uint64)).wait()
    grads = np.arange(12, dtype=np.float32).reshape(3, 4)
    client.push_rows("emb", ids, grads).wait()
    after = client.pull_rows("emb", np.array([3, 11], np.uint64)).wait()
    assert after.shape == (2, 4)
    np.testing.assert_array_equal(after[0], before[0] - grads[0] - grads[2])
    np.testing.assert_array_equal(after[1], before[1] - grads[1])


def test_pushed_array_dropped_by_the_caller_still_sends_its_bytes(client):
    n = 2800
    before = pull(client, "w").ravel()
    g = np.full(n, 3.0, np.float32)
    h = client.push("w", g)
    del g
    gc.collect()
    # Reuse the freed memory at once: were the buffer freed, these would
    # overwrite what the I/O thread sends.
    junk = [np.full(n, 1e6, np.float32) for _ in range(8)]
    h.wait()
    del junk
    np.testing.assert_array_equal(pull(client, "w").ravel(), before - 3.0)


def test_dropped_handle_and_array_still_apply_exactly(client):
    before = pull(client, "b")
    client.push("b", np.array([1, 1, 1], np.float32))  # handle dropped too
    gc.collect()
    junk = [np.full(3, 1e6, np.float32) for _ in range(64)]
    del junk
    # The push is applied once, with the right bytes (deadline, no sleep:
    # each pull below is a round trip).
    for _ in range(1000):
        now = pull(client, "b")
        if not np.array_equal(now, before):
            break
    np.testing.assert_array_equal(now, before - 1.0)


def test_properties(client, dense_cluster):
    assert client.model == "pytest_dense"
    assert client.tensors == {"w": (4, 700), "b": (3,)}
    assert client.tables == {"emb": 4}
    assert client.consistency == "async"
    assert isinstance(client.spec_hash, int) and client.spec_hash != 0
    assert client.clock_count == 0
    stats = client.stats()
    assert [s["shard"] for s in stats] == [0, 1]
    assert all(s["model"] == "pytest_dense" for s in stats)


def test_closing_with_calls_in_flight_is_safe(dense_cluster):
    c = shardps.Client(dense_cluster.cluster_file)
    handles = [c.push("w", np.ones(2800, np.float32)) for _ in range(20)]
    handles += [c.pull("w") for _ in range(5)]
    c.close()
    for h in handles:
        assert h.done()
        try:
            h.wait()
        except shardps.UnavailableError:
            pass  # failed by the close; an acknowledged one returns
    c.close()  # twice is fine


def test_context_manager_closes(dense_cluster):
    with shardps.Client(dense_cluster.cluster_file) as c:
        pull(c, "b")
    with pytest.raises(shardps.UnavailableError, match="client is closed"):
        c.pull("b")


def test_push_held_by_a_stopped_shard_sends_the_dropped_arrays_bytes(
        start_cluster):
    # 32 MiB: more than the sockets buffer, so most of it is still read from
    # the array while the shard is stopped, after the caller dropped it.
    n = 8 << 20
    c = start_cluster(spec_text("pytest_big", {"big": (n,)}), shards=1)
    with shardps.Client(c.cluster_file, request_timeout=20.0) as client:
        pid = client.stats()[0]["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            g = np.full(n, 3.0, np.float32)
            h = client.push("big", g)
            del g
            gc.collect()
            junk = [np.full(n, 7.0, np.float32) for _ in range(3)]
        finally:
            os.kill(pid, signal.SIGCONT)
        h.wait()
        del junk
        got = client.pull("big").wait()
        assert np.count_nonzero(got != -3.0) == 0
