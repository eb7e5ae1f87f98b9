"""shardps.torch.QueueDataset: a DataLoader consumes a BatchQueue's batches
exactly, and the end of the consumer's loop closes the queue, which stops a
producer."""

import threading

import numpy as np
import pytest
import torch

shardps = pytest.importorskip("shardps")
if not hasattr(shardps, "BatchQueue"):
    pytest.skip("the compiled shardps module is not built", allow_module_level=True)
import shardps.torch as st  # noqa: E402

# The queue's layout: features [batch, window, features], labels
# [batch, horizon].
ROWS, WINDOW, COLS = 4, 2, 3


def batch(i):
    features = np.arange(ROWS * WINDOW * COLS, dtype=np.float32).reshape(
        ROWS, WINDOW, COLS) + i
    labels = np.full((ROWS, 1), i, dtype=np.float32)
    return features, labels


class Producer(threading.Thread):
    """Pushes batch(0), batch(1), ... until the queue refuses one."""

    def __init__(self, path, count=None):
        super().__init__(daemon=True)
        self.queue = shardps.BatchQueue.open(path)
        self.count = count
        self.pushed = 0
        self.stopped_by = None

    def run(self):
        try:
            i = 0
            while self.count is None or i < self.count:
                self.queue.push(*batch(i), timeout=10.0)
                self.pushed += 1
                i += 1
            self.queue.mark_end()
        except shardps.Error as e:
            self.stopped_by = e


def test_breaking_out_of_the_loop_closes_the_queue_and_stops_producers(
        tmp_path):
    path = str(tmp_path / "q")
    shardps.BatchQueue.create(path, 2, 4096)
    producer = Producer(path)
    producer.start()
    ds = st.QueueDataset(path, timeout=10.0)
    seen = []
    for x, y in torch.utils.data.DataLoader(ds, batch_size=None):
        assert isinstance(x, torch.Tensor)
        f, l = batch(len(seen))
        assert np.array_equal(x.numpy().reshape(f.shape), f)
        assert np.array_equal(y.numpy().reshape(l.shape), l)
        seen.append(x.clone())
        if len(seen) == 3:
            break
    # The loop's iterator is gone: the queue closed, the producer stops.
    producer.join(20)
    assert not producer.is_alive()
    assert isinstance(producer.stopped_by, shardps.ClosedError), \
        producer.stopped_by
    assert producer.pushed <= 3 + 2  # at most a full queue beyond the 3 read
    with pytest.raises(RuntimeError, match="consumed once"):
        iter(ds).__next__()


def test_a_finite_stream_ends_the_iteration(tmp_path):
    path = str(tmp_path / "q")
    # A finite stream: it ends after its one producer's end mark.
    shardps.BatchQueue.create(path, 2, 4096, producers=1)
    producer = Producer(path, count=5)
    producer.start()
    ds = st.QueueDataset(path, timeout=10.0, copy=True)
    got = [(x, y) for x, y in ds]
    producer.join(20)
    assert producer.stopped_by is None and producer.pushed == 5
    assert len(got) == 5
    for i, (x, y) in enumerate(got):
        assert np.array_equal(x.numpy().reshape(ROWS, WINDOW, COLS), batch(i)[0])
        assert y.numpy().reshape(-1).tolist() == [float(i)] * ROWS


def test_close_stops_a_blocked_producer(tmp_path):
    path = str(tmp_path / "q")
    shardps.BatchQueue.create(path, 2, 4096)
    producer = Producer(path)
    producer.start()
    ds = st.QueueDataset(path, timeout=10.0)
    it = iter(ds)
    next(it)
    ds.close()
    producer.join(20)
    assert not producer.is_alive()
    assert isinstance(producer.stopped_by, shardps.ClosedError)
