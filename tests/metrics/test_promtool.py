"""`promtool check metrics` (Debian's `prometheus` package) accepts what a
shard, a host replica and a client serve, with no lint warning, when every
family is there; each serves exactly the families conftest.py lists."""

import subprocess

import pytest

from conftest import FAMILIES_OF, PROMTOOL, Scrape, ours, require_tool


def promtool_lint(promtool, text):
    """promtool's output on `text`; fails the test when it rejects it."""
    check = subprocess.run([promtool, "check", "metrics"],
                           input=text.encode(), capture_output=True,
                           timeout=60)
    lint = (check.stdout + check.stderr).decode()
    assert check.returncode == 0, lint
    return lint


@pytest.mark.parametrize("kind", sorted(FAMILIES_OF))
def test_promtool_accepts_every_family_served(deployment, kind):
    promtool = require_tool(PROMTOOL)
    scrapes = [(where, text) for where, k, text in deployment.scrapes
               if k == kind]
    assert scrapes, kind
    for where, text in scrapes:
        # Every family this kind serves, each with its type, and no
        # shardps_/process_ family the list does not know.
        served = ours(text)
        expected = FAMILIES_OF[kind]
        assert served == expected, (
            where, set(served.items()) ^ set(expected.items()), text)
        lint = promtool_lint(promtool, text)
        assert lint.strip() == "", f"promtool lint of {where}:\n{lint}"


def test_the_client_expositions_hold_a_refused_request(deployment):
    """The observer's push was refused by both shards: the client lint
    above ran on a non-ok code, counted once per shard request."""
    s = Scrape(deployment.observer_text)
    assert s.value("shardps_client_requests_total", op="push",
                   code="invalid_argument") == 2
    assert s.value("shardps_client_requests_total", op="push",
                   code="ok") == 0
    assert s.value("shardps_client_request_duration_seconds_count",
                   op="push") == 2
    assert s.value("shardps_client_requests_total", op="pull",
                   code="ok") == 2


def test_promtool_fails_on_a_bad_exposition():
    """The check above can fail: promtool rejects a counter without
    _total and a malformed line."""
    promtool = require_tool(PROMTOOL)
    bad = ("# HELP shardps_things Things.\n# TYPE shardps_things counter\n"
           "shardps_things 1\n")
    check = subprocess.run([promtool, "check", "metrics"], input=bad.encode(),
                           capture_output=True, timeout=60)
    assert (check.stdout + check.stderr).strip() != b""
