"""A shard's counters match what a Python client did to it, exactly."""

import numpy as np
import pytest

import shardps
from conftest import BSP_SPEC, Scrape, scrape, spec_text

# "w" is 3 blocks of 1024 floats over both shards; "b" one block on one.
ASYNC_SPEC = spec_text("metrics_async", {"w": (4, 700), "b": (10,)})
W_FLOATS, B_FLOATS = 2800, 10


def scrapes(cluster):
    return [Scrape(scrape(u)) for u in cluster.metrics_urls]


def requests(s, op, code="ok"):
    return s.value("shardps_requests_total", default=0.0, op=op, code=code)


def test_requests_bytes_and_latency_count_what_the_client_did(start_shards):
    cluster = start_shards(ASYNC_SPEC, 2)
    pushes, pulls, b_pushes = 7, 5, 4
    with shardps.Client(cluster.cluster_file, request_timeout=10.0) as c:
        before = scrapes(cluster)
        for _ in range(pushes):
            c.push("w", np.ones(W_FLOATS, np.float32)).wait(10)
        for _ in range(pulls):
            c.pull("w").wait(10)
        after_w = scrapes(cluster)
        for _ in range(b_pushes):
            c.push("b", np.ones(B_FLOATS, np.float32)).wait(10)
        after_b = scrapes(cluster)

    for s0, s in zip(before, after_w):
        # "w" touches both shards: one request per shard per call, each
        # counted once, when it is answered (before the reply is sent).
        assert requests(s, "push") - requests(s0, "push") == pushes
        assert requests(s, "pull") - requests(s0, "pull") == pulls
        assert s.value("shardps_request_duration_seconds_count",
                       op="push") == pushes
        assert s.value("shardps_request_duration_seconds_count",
                       op="pull") == pulls
        assert s.value("shardps_request_duration_seconds_bucket",
                       op="push", le="+Inf") == pushes
        assert s.value("shardps_apply_duration_seconds_count") > 0
        assert s.value("shardps_block_updates_total") >= pushes
        assert not [l for l, v in s.find("shardps_requests_total")
                    if l["code"] != "ok" and v > 0]
    # The payloads' bytes (headers come on top).
    received = sum(s.value("shardps_received_bytes_total") -
                   s0.value("shardps_received_bytes_total")
                   for s0, s in zip(before, after_w))
    sent = sum(s.value("shardps_sent_bytes_total") -
               s0.value("shardps_sent_bytes_total")
               for s0, s in zip(before, after_w))
    assert received >= pushes * W_FLOATS * 4
    assert sent >= pulls * W_FLOATS * 4

    # "b" lives on one shard: it counts all of them, the other none.
    deltas = sorted(requests(s, "push") - requests(s0, "push")
                    for s0, s in zip(after_w, after_b))
    assert deltas == [0, b_pushes]


def test_a_refused_request_counts_under_its_code(start_shards):
    cluster = start_shards(BSP_SPEC, 2)
    # In a bsp model only workers push: each shard refuses the push of a
    # client that is not one (invalid_argument), and applies nothing.
    with shardps.Client(cluster.cluster_file, request_timeout=10.0) as c:
        for _ in range(3):
            with pytest.raises(shardps.InvalidArgumentError):
                c.push("w", np.ones(2800, np.float32)).wait(10)
    for s in scrapes(cluster):
        assert requests(s, "push", "invalid_argument") == 3
        assert requests(s, "push") == 0
        assert s.value("shardps_request_duration_seconds_count",
                       op="push") == 3
        assert s.value("shardps_block_updates_total") == 0
