"""A real Prometheus server (Debian's `prometheus`) scrapes a 2-shard
cluster, a host replica of it and the trainer pushing to it (each its own
job) under a paced load; what it stored matches the pushes the test made,
and every panel of deploy/grafana/shardps.json is a query it answers."""

import time
import urllib.parse

import numpy as np

import shardps
from conftest import (load_dashboard, panel_targets, spec_text, substitute,
                      wait_for)

MODEL = "metrics_prom"
# "w" is 2 blocks of 1024 floats: one on each shard, so each push is one
# request to each shard.
SPEC = spec_text(MODEL, {"w": (2048,)})
RATE = 100.0      # pushes per second, on an absolute schedule
DURATION = 10.0   # seconds of load
# rate() is evaluated over the middle WINDOW seconds of the load: at least
# 2.5 s away from either end, so neither the start nor the end of the load
# (nor a late scrape near them) is in it, and with a scrape a second it
# holds 4 or 5 samples, so a missed scrape still leaves a rate.
WINDOW = 5.0
PUSH = 'shardps_requests_total{op="push",code="ok"}'
CLIENT_PUSH = 'shardps_client_requests_total{op="push",code="ok"}'

# Panels that must show data during the load (the others only have to be
# queries Prometheus accepts: no worker, queue or error here).
NON_EMPTY_PANELS = {"Request throughput by op",
                    "Request latency p50 / p99 by op",
                    "Bytes in / out per second", "Replica lag",
                    "Trainer latency p50 / p99 by op",
                    "Trainer bytes sent / received per second"}


def paced_pushes(client, rate, duration):
    """Pushes "w" at `rate` per second for `duration` seconds, each at its
    own absolute time (a late push does not move the later ones, so the
    schedule catches up after a stall). Returns (wall-clock start, end,
    wall-clock time each push was answered)."""
    grad = np.ones(2048, np.float32)
    count = int(rate * duration)
    done = []
    start = time.time()
    t0 = time.monotonic()
    for i in range(count):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        client.push("w", grad).wait(10)
        done.append(time.time())
    return start, time.time(), done


def test_prometheus_sees_the_pushes_and_their_rate(start_shards,
                                                   start_replica,
                                                   start_prometheus):
    cluster = start_shards(SPEC, 2)
    replica = start_replica(cluster)
    with shardps.Client(cluster.cluster_file, request_timeout=10.0,
                        metrics_listen="0") as c:
        prom = start_prometheus({
            "shardps": cluster.targets(),
            "shardps-replica": [replica.target()],
            "shardps-trainer": [urllib.parse.urlsplit(c.metrics_url).netloc],
        })
        c.pull("w").wait(10)  # connected to both shards before the load

        def scraped_all():
            up = prom.vector("up")
            return (len(up) == 4 and all(v == 1 for _, v in up) and
                    len(prom.vector(PUSH)) == 2 and
                    len(prom.vector(CLIENT_PUSH)) == 1 and
                    len(prom.vector("shardps_replica_lag_seconds")) == 2)
        wait_for("Prometheus to scrape the shards, replica and trainer",
                 scraped_all, timeout=60, interval=0.2)

        start, end, done = paced_pushes(c, RATE, DURATION)

        # A scrape of each shard and of the trainer that began after the
        # last push was answered (so its count holds every push: a shard
        # counts a reply before it sends it, the client before the push's
        # handle completes).
        def scraped_after_load():
            ts = prom.vector(f"timestamp({PUSH}) or "
                             f"timestamp({CLIENT_PUSH})")
            return len(ts) == 3 and min(v for _, v in ts) > end
        wait_for("a scrape of both shards and the trainer after the load",
                 scraped_after_load, timeout=30, interval=0.2)
    pushes = len(done)

    # Exact: each push is one request per shard, as both sides count it.
    total = prom.vector(f"sum({PUSH})")
    assert total and total[0][1] == 2 * pushes, (total, pushes)
    sent = prom.vector(f"sum({CLIENT_PUSH})")
    assert sent and sent[0][1] == 2 * pushes, (sent, pushes)

    # The rate over a window in the middle of the load, evaluated at the
    # window's end, from the samples Prometheus stored.
    at = (start + end) / 2 + WINDOW / 2
    assert at - WINDOW >= start + 2 and at <= end - 2, (start, at, end)
    window = f"{int(WINDOW * 1000)}ms"
    # The pacing held in that window (else the check below would measure
    # the machine, not the metrics).
    paced = sum(1 for t in done if at - WINDOW < t <= at) / WINDOW
    assert abs(paced - RATE) <= 0.20 * RATE, \
        f"the load ran at {paced:.1f}/s, not {RATE}/s, in the window"
    rate = prom.vector(f"sum(rate({PUSH}[{window}]))", at=at)
    assert rate, f"no rate at {at} (load {start}..{end})"
    expected = 2 * RATE
    stored = prom.query(f"{PUSH}[{window}]", at=at)["data"]["result"]
    assert abs(rate[0][1] - expected) <= 0.25 * expected, \
        (rate, expected, paced, stored)

    # Every panel's query, as Grafana would send it for this model and
    # both shards (multi-value regex; a 1 s scrape makes
    # $__rate_interval 4 s), at the same time during the load.
    dashboard = load_dashboard()
    values = {"model": MODEL, "shard": "(0|1)", "__rate_interval": "4s",
              "datasource": ""}
    for panel, target in panel_targets(dashboard):
        expr = substitute(target["expr"], values)
        reply = prom.query(expr, at=at)
        assert reply.get("status") == "success", (panel["title"], expr,
                                                  reply)
        if panel["title"] in NON_EMPTY_PANELS:
            assert reply["data"]["result"], (panel["title"], expr)

    # And with "All" shards (the variable's allValue): a per-shard panel
    # shows only the shards' series, not the replica's or the trainer's
    # process_* (a client's carry a model label but no shard label).
    shard_var = next(v for v in dashboard["templating"]["list"]
                     if v["name"] == "shard")
    values["shard"] = shard_var["allValue"]
    for panel, target in panel_targets(dashboard):
        expr = substitute(target["expr"], values)
        result = prom.vector(expr, at=at)
        if panel["title"] in NON_EMPTY_PANELS:
            assert result, (panel["title"], expr)
        if "by (shard)" in expr:
            shards = {m.get("shard", "") for m, _ in result}
            assert shards <= {"0", "1"}, (panel["title"], expr, result)

    # The template variables' label_values() resolve to this cluster.
    models = prom.api("label/model/values", **{"match[]":
                                               "shardps_shard_info"})
    assert MODEL in models["data"], models
    shards = prom.api("label/shard/values", **{
        "match[]": f'shardps_shard_info{{model=~"{MODEL}"}}'})
    assert sorted(shards["data"]) == ["0", "1"], shards
