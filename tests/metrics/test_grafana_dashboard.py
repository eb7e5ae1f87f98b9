"""deploy/grafana/shardps.json is a dashboard Grafana can import whose
panels query series that shards, host replicas and clients serve (as
scraped from real ones: conftest.Deployment). (test_prometheus.py also
sends every panel's query to a real Prometheus.)"""

import json
import re

from conftest import (DASHBOARD, GRAFANA_BUILTINS, load_dashboard,
                      metric_names, panel_targets, variables_in)

# What an operator needs to see; each title is a panel of the dashboard.
REQUIRED_PANELS = [
    "Request throughput by op", "Errors by code",
    "Request latency p50 / p99 by op", "Apply latency p50 / p99 by shard",
    "Bytes in / out per second", "Worker clocks", "Worker staleness",
    "Parked requests", "Connected clients",
    "Replica subscribers and streamed bytes/s", "Replica lag",
    "Queue depth", "Queue batches per second",
    "Queue producers blocked / consumers starved", "Memory",
    "Last checkpoint age", "Refused handshakes per second",
    "Trainer latency p50 / p99 by op", "Trainer request errors by code",
    "Trainer retries and timeouts per second",
    "Trainer bytes sent / received per second",
]

# The row the trainer (client) panels sit in, below every other panel.
TRAINERS_ROW = "Trainers"


def trainer_panel(panel):
    """True for a panel over client series (shardps_client_*)."""
    return any(n.startswith("shardps_client_")
               for t in panel.get("targets", [])
               for n in metric_names(t["expr"]))


def test_dashboard_is_valid_json_with_what_grafana_needs():
    with open(DASHBOARD) as f:
        text = f.read()
    dashboard = json.loads(text)
    assert 30 <= dashboard["schemaVersion"] <= 39
    assert dashboard["title"] and dashboard["uid"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    titles = [p["title"] for p in panels]
    for title in REQUIRED_PANELS:
        assert title in titles, title
    for p in panels:
        where = f"panel {p['id']} {p['title']!r}"
        grid = p["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), where
        assert grid["w"] > 0 and grid["h"] > 0, where
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, where
        if p["type"] == "row":
            # An open row: its panels follow it in `panels` (a collapsed
            # one would hold them in its own "panels").
            assert grid["w"] == 24 and grid["h"] == 1, where
            assert p["collapsed"] is False and p["panels"] == [], where
            assert "targets" not in p, where
            continue
        assert p["datasource"] == {"type": "prometheus",
                                   "uid": "${datasource}"}, where
        assert p["targets"], where
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for t in p["targets"]:
            assert t["expr"].strip(), where
    # No two panels overlap on the 24-column grid.
    cells = {}
    for p in panels:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (p["title"], cells.get((x, y)))
                cells[(x, y)] = p["title"]
    # The trainer panels are the ones below the Trainers row, and only
    # they are.
    rows = [p for p in panels if p["type"] == "row"]
    assert [r["title"] for r in rows] == [TRAINERS_ROW]
    row_y = rows[0]["gridPos"]["y"]
    for p in panels:
        if p["type"] != "row":
            assert (p["gridPos"]["y"] > row_y) == trainer_panel(p), \
                p["title"]


def test_every_panel_queries_a_series_that_is_served(deployment):
    # What real shards, a host replica and clients served (conftest
    # checks each serves exactly its documented families).
    served = deployment.served_sample_names()
    for panel, target in panel_targets(load_dashboard()):
        names = metric_names(target["expr"])
        assert names, (panel["title"], target["expr"])
        unknown = names - served
        assert not unknown, (f"panel {panel['title']!r} queries {unknown}, "
                             "which no shard, replica or client serves")


def test_template_variables_resolve(deployment):
    dashboard = load_dashboard()
    variables = dashboard["templating"]["list"]
    by_name = {v["name"]: v for v in variables}
    assert by_name["datasource"]["type"] == "datasource"
    assert by_name["datasource"]["query"] == "prometheus"
    defined = set()
    for v in variables:
        # A variable may use only the ones defined before it.
        if v["type"] == "query":
            query = v["query"]["query"] if isinstance(v["query"], dict) \
                else v["query"]
            assert query.startswith("label_values("), v["name"]
            assert variables_in(query) <= defined, v["name"]
            assert metric_names(query.split("(", 1)[1].rsplit(",", 1)[0]) \
                <= deployment.served_sample_names({"shard"}), v["name"]
            assert v["datasource"]["uid"] == "${datasource}"
        defined.add(v["name"])
    assert {"datasource", "model", "shard"} <= defined
    # "All" shards selects only series with a shard label: a client's
    # process_* carry the model but no shard, and would otherwise show in
    # the per-shard memory and CPU panels.
    assert not re.fullmatch(by_name["shard"]["allValue"], "")
    assert re.fullmatch(by_name["shard"]["allValue"], "0")
    for panel, target in panel_targets(dashboard):
        used = variables_in(json.dumps(panel))
        assert used <= defined | GRAFANA_BUILTINS, (panel["title"], used)
    # Every panel filters on the model; every one but the trainers' on
    # the shards selected too (a replica's series carry model and shard
    # labels like a shard's). A client's have no shard label: a shard
    # filter would select nothing.
    for panel, target in panel_targets(dashboard):
        assert 'model=~"$model"' in target["expr"], panel["title"]
        if trainer_panel(panel):
            assert "$shard" not in target["expr"], panel["title"]
        else:
            assert 'shard=~"$shard"' in target["expr"], panel["title"]


def test_metric_names_reads_promql():
    """The name extraction the checks above rely on."""
    assert metric_names('sum by (op, code) (rate(a_total{op="x{y}",'
                        'code!="ok"}[$__rate_interval]))') == {"a_total"}
    assert metric_names("histogram_quantile(0.99, sum by (le) "
                        "(rate(h_bucket[5m]))) / on(shard) g") == \
        {"h_bucket", "g"}
    assert metric_names("-sum(rate(x[1m])) by (shard)") == {"x"}
