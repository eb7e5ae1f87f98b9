"""The alerting rules and example configuration in deploy/prometheus/:
promtool accepts them, its rule unit tests pass (each alert fires on the
series it is about and stays quiet otherwise), and every metric a rule
reads is one a shard, replica or client served in this session's
deployment (conftest.Deployment)."""
import os
import re
import subprocess

import conftest

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy",
                      "prometheus")


def promtool(*args):
    tool = conftest.require_tool(conftest.PROMTOOL)
    return subprocess.run([tool, *args], cwd=DEPLOY, capture_output=True,
                          text=True, timeout=60)


def test_promtool_accepts_the_rules_and_the_config():
    rules = promtool("check", "rules", "shardps-alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 7 rules found" in rules.stdout
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_fires_on_its_series_and_only_then():
    result = promtool("test", "rules", "shardps-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_can_fail(tmp_path):
    # The same unit test with the shard that went down now up: promtool
    # must report the missing alert, so the test above proves something.
    with open(os.path.join(DEPLOY, "shardps-alerts.test.yml")) as f:
        text = f.read()
    broken = text.replace("values: '1 1 0 0 0'", "values: '1 1 1 1 1'")
    assert broken != text
    path = tmp_path / "broken.test.yml"
    path.write_text(broken.replace(
        "  - shardps-alerts.yml",
        "  - " + os.path.abspath(os.path.join(DEPLOY, "shardps-alerts.yml"))))
    result = promtool("test", "rules", str(path))
    assert result.returncode != 0


def test_every_metric_a_rule_reads_is_served(deployment):
    with open(os.path.join(DEPLOY, "shardps-alerts.yml")) as f:
        exprs = [m.group(1) for m in re.finditer(r"expr: (.*)", f.read())]
    names = {n for e in exprs for n in re.findall(r"\b(shardps_[a-z_]+)", e)}
    assert names, "no shardps_ metric found in the rules"
    served = deployment.served_sample_names()
    assert names <= served, f"rules read unknown metrics: {names - served}"
