"""BatchQueue: iteration, end of stream, close, producer stop."""

import os
import threading

import numpy as np
import pytest

import shardps


def batch(k, b=2, window=3, features=4, horizon=2):
    f = np.full((b, window, features), float(k), np.float32)
    lab = np.full((b, horizon), -float(k), np.float32)
    return f, lab


def test_iteration_sees_every_batch_then_stops(tmp_shm):
    path = os.path.join(tmp_shm, "q")
    q = shardps.BatchQueue.create(path, 4, 1 << 12, producers=1)
    errors = []

    def produce():
        try:
            p = shardps.BatchQueue.open(path)
            for k in range(10):
                p.push(*batch(k), timeout=10)
            p.mark_end()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=produce)
    t.start()
    seen = []
    for features, labels in q:
        assert features.shape == (2, 3, 4) and labels.shape == (2, 2)
        assert not features.flags.writeable and not labels.flags.writeable
        assert features.base is q and labels.base is q  # over the slot
        seen.append(float(features[0, 0, 0]))
        np.testing.assert_array_equal(labels, -features[:, 0, :2])
    t.join(timeout=30)
    assert not errors
    assert seen == [float(k) for k in range(10)]  # one producer: in order
    assert q.next(timeout=1) is None  # still the end
    s = q.stats()
    assert s["produced"] == 10 and s["consumed"] == 10 and s["closed"]


def test_break_releases_the_slot(tmp_shm):
    q = shardps.BatchQueue.create(os.path.join(tmp_shm, "q"), 2, 1 << 12)
    for k in range(2):
        q.push(*batch(k))
    for features, _ in q:
        break
    assert q.stats()["consumed"] == 1  # released when the loop ended
    features, _ = q.next(timeout=5)
    assert features[0, 0, 0] == 1.0
    q.close()


def test_close_stops_a_blocked_producer(tmp_shm):
    path = os.path.join(tmp_shm, "q")
    q = shardps.BatchQueue.create(path, 2, 1 << 12)
    p = shardps.BatchQueue.open(path)
    p.push(*batch(0))
    p.push(*batch(1))  # full now
    outcome = []
    started = threading.Event()

    def produce():
        started.set()
        try:
            p.push(*batch(2), timeout=20)  # blocks: no free slot
            outcome.append("pushed")
        except shardps.ClosedError as e:
            outcome.append(e)

    t = threading.Thread(target=produce)
    t.start()
    started.wait()
    q.close()  # runs while the producer blocks: the GIL is free
    t.join(timeout=20)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], shardps.ClosedError)
    assert outcome[0].code == "kClosed"
    with pytest.raises(shardps.ClosedError):
        p.push(*batch(3))
    # Committed batches stay readable, then the stream ends.
    assert [float(f[0, 0, 0]) for f, _ in q] == [0.0, 1.0]


def test_queue_errors(tmp_shm):
    path = os.path.join(tmp_shm, "q")
    with pytest.raises(shardps.NotFoundError):
        shardps.BatchQueue.open(path)
    q = shardps.BatchQueue.create(path, 2, 64)
    with pytest.raises(shardps.BusyError):
        shardps.BatchQueue.create(path, 2, 64)
    with pytest.raises(shardps.SizeMismatchError):
        q.push(*batch(0, b=8))  # does not fit 64 bytes
    with pytest.raises(shardps.SizeMismatchError):
        q.push(np.zeros((2, 3), np.float32), np.zeros((2, 1), np.float32))
    with pytest.raises(shardps.InvalidArgumentError):
        q.push(np.zeros((1, 1, 1), np.int32), np.zeros((1, 1), np.float32))
    with pytest.raises(shardps.TimeoutError):
        q.next(timeout=0.01)
    with pytest.raises(shardps.InvalidArgumentError):
        q.mark_end()  # created with producers=0
