"""Blocking waits release the GIL: another Python thread runs the code that
completes them."""

import threading

import numpy as np

import shardps
from conftest import spec_text


def test_a_wait_blocked_in_one_thread_is_completed_by_another(start_cluster):
    c = start_cluster(spec_text("pytest_gil", {"w": (2000,)},
                                consistency='mode = "bsp"\nworkers = 2\n'
                                            'wait_timeout = 10'))
    w0 = shardps.Client(c.cluster_file, worker=0)
    w1 = shardps.Client(c.cluster_file, worker=1)
    try:
        w0.push("w", np.ones(2000, np.float32)).wait()
        h0 = w0.clock()
        waiting = threading.Event()
        result = []

        def block_in_wait():
            waiting.set()
            try:
                result.append(h0.wait())  # done only after worker 1 clocks
            except Exception as e:
                result.append(e)

        a = threading.Thread(target=block_in_wait)
        a.start()
        waiting.wait()
        # Python code in this thread while A sits in wait(): were the GIL
        # held there, none of this would run and A's clock would time out.
        assert not h0.done()
        w1.push("w", np.full(2000, 2.0, np.float32)).wait()
        w1.clock().wait()
        a.join(timeout=20)
        assert result == [None]
        np.testing.assert_array_equal(w0.pull("w").wait(),
                                      np.full(2000, -3.0, np.float32))
    finally:
        w0.close()
        w1.close()
