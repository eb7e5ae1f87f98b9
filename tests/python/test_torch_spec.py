"""shardps.torch.spec_from_module: the spec a module's parameters make
starts real servers whose tensors are the module's parameters."""

import json
import subprocess

import numpy as np
import pytest
import torch

import shardps.torch as st
import torch_cluster


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.fc = torch.nn.Linear(4 * 26 * 26, 10)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))  # a 0-d parameter


def inspect(segment):
    out = subprocess.run([torch_cluster.shardps_binary(), "inspect",
                          str(segment), "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_spec_round_trips_through_a_server_start(tmp_path):
    torch.manual_seed(0)
    net = Net()
    spec = tmp_path / "net.toml"
    text = st.spec_from_module(
        net, str(spec), model_name="torch_rt", optimizer="adam", lr=0.002,
        optimizer_options={"beta1": 0.8},
        overrides={"fc.bias": {"kind": "sgd", "lr": 0.1},
                   "conv.weight": {"init": "normal:0.5", "seed": 42}},
        block_floats=1024)
    assert spec.read_text() == text
    with torch_cluster.launch(spec, tmp_path) as cluster:
        segs = torch_cluster.segments(tmp_path, "torch_rt")
        assert len(segs) == 2
        reports = [inspect(s) for s in segs]
        # Every shard lists every tensor, with the module's shapes.
        for r in reports:
            assert r["block_floats"] == 1024
            assert r["optimizer"] == "adam"
            shapes = {t["name"]: t["shape"] for t in r["tensors"]}
            expected = {n: list(p.shape) or [1]
                        for n, p in net.named_parameters()}
            assert shapes == expected
            kinds = {t["name"]: t["optimizer"] for t in r["tensors"]}
            assert kinds["fc.bias"] == "sgd"
            assert kinds["fc.weight"] == "adam"
        # The 0-d parameter comes out of the servers with its value (a
        # constant init), the biases' distribution as a uniform init.
        out = tmp_path / "scale.npy"
        subprocess.run([torch_cluster.shardps_binary(), "pull", "--cluster",
                        cluster, "--tensor", "scale", "--out", str(out)],
                       check=True, capture_output=True)
        assert np.load(out).tolist() == [2.0]
        out = tmp_path / "w.npy"
        subprocess.run([torch_cluster.shardps_binary(), "pull", "--cluster",
                        cluster, "--tensor", "fc.weight", "--out", str(out)],
                       check=True, capture_output=True)
        w = np.load(out)
        bound = 1 / np.sqrt(4 * 26 * 26)  # torch's default Linear init
        assert w.shape == (10, 2704)
        assert np.abs(w).max() <= bound * 1.0001
        assert np.abs(w).max() > bound * 0.99
        assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound


def test_current_init_picks_the_values_distribution():
    torch.manual_seed(1)
    lin = torch.nn.Linear(3000, 2)
    torch.nn.init.zeros_(lin.bias)
    text = st.spec_from_module(lin, model_name="m", init="current")
    assert 'name = "bias"\nshape = [2]\ninit = "zeros"' in text
    torch.nn.init.normal_(lin.weight, std=0.05)
    text = st.spec_from_module(lin, model_name="m")
    init = [l for l in text.splitlines() if l.startswith("init")][0]
    assert init.startswith('init = "normal:0.04') or init.startswith(
        'init = "normal:0.05'), init
    torch.nn.init.constant_(lin.bias, -1.5)
    assert 'init = "constant:-1.5"' in st.spec_from_module(lin, model_name="m")


def test_consistency_and_named_init():
    lin = torch.nn.Linear(2, 2)
    text = st.spec_from_module(lin, model_name="m", init="zeros",
                               optimizer="sgd", lr=0.5, consistency="bsp",
                               workers=2)
    assert '[consistency]\nmode = "bsp"\nworkers = 2\nreduce = "mean"' in text
    assert text.count('init = "zeros"') == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(overrides={"nope": {"lr": 1}}), "does not have: nope"),
    (dict(overrides={"bias": {"lrr": 1}}), "unknown optimizer key 'lrr'"),
    (dict(optimizer="adamax"), "unknown optimizer kind 'adamax'"),
    (dict(block_floats=1000), "multiple of 1024"),
    (dict(consistency="bsp"), "needs workers="),
    (dict(lr=float("nan")), "finite"),
])
def test_bad_input_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        st.spec_from_module(torch.nn.Linear(2, 2), model_name="m", **kwargs)
