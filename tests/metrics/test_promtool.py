"""`promtool check metrics` (Debian's `prometheus` package) accepts what a
shard serves, with no lint warning, when every family is there."""

import subprocess

import numpy as np

import shardps
from conftest import (PROMTOOL, SERVED_FAMILIES, families, require_tool,
                      scrape, start_full_cluster)


def bsp_round(clients, tensor="w", size=2800):
    """Each worker pushes `tensor` and clocks; then worker 0 pulls it."""
    for c in clients:
        c.push(tensor, np.ones(size, np.float32)).wait(10)
    handles = [c.clock() for c in clients]
    for h in handles:
        h.wait(10)
    return clients[0].pull(tensor).wait(10)


def test_promtool_accepts_every_family_a_shard_serves(start_shards):
    promtool = require_tool(PROMTOOL)
    cluster = start_full_cluster(start_shards)
    workers = [shardps.Client(cluster.cluster_file, worker=w,
                              request_timeout=10.0) for w in range(2)]
    try:
        for _ in range(3):
            bsp_round(workers)
        for url in cluster.metrics_urls:
            text = scrape(url)
            # Every documented family, each with its type, and no
            # shardps_/process_ family this list does not know.
            served = families(text)
            for name, kind in SERVED_FAMILIES.items():
                assert served.get(name) == kind, (name, url, text)
            ours = {n for n in served
                    if n.startswith(("shardps_", "process_"))}
            assert ours == set(SERVED_FAMILIES), \
                ours.symmetric_difference(SERVED_FAMILIES)
            check = subprocess.run([promtool, "check", "metrics"],
                                   input=text.encode(), capture_output=True,
                                   timeout=60)
            lint = (check.stdout + check.stderr).decode()
            assert check.returncode == 0, f"{url}:\n{lint}"
            assert lint.strip() == "", f"promtool lint at {url}:\n{lint}"
    finally:
        for c in workers:
            c.close()


def test_promtool_fails_on_a_bad_exposition():
    """The check above can fail: promtool rejects a counter without
    _total and a malformed line."""
    promtool = require_tool(PROMTOOL)
    bad = ("# HELP shardps_things Things.\n# TYPE shardps_things counter\n"
           "shardps_things 1\n")
    check = subprocess.run([promtool, "check", "metrics"], input=bad.encode(),
                           capture_output=True, timeout=60)
    assert (check.stdout + check.stderr).strip() != b""
