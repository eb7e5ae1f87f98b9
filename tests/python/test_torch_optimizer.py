"""shardps.torch.DistributedOptimizer against real servers: one step moves
every weight exactly as the servers' SGD does (w -= lr * g, float32), in
co-processor (mapped), copy and classic (pulled) modes, async and bsp."""

import numpy as np
import pytest
import torch

import torch_cluster

shardps = pytest.importorskip("shardps")
if not hasattr(shardps, "Client"):
    pytest.skip("the compiled shardps module is not built", allow_module_level=True)
import shardps.torch as st  # noqa: E402

LR = 0.25


def make_net():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                               torch.nn.Linear(2 * 4 * 4, 3))


@pytest.fixture(params=["async", "bsp"])
def cluster(request, tmp_path):
    spec = tmp_path / "net.toml"
    # block_floats 1024 and 2 shards: the Linear weight (96 floats) and the
    # rest spread over both shards.
    st.spec_from_module(make_net(), str(spec), model_name="torch_opt",
                        optimizer="sgd", lr=LR, init="normal:0.5",
                        block_floats=1024, consistency=request.param,
                        workers=1)
    with torch_cluster.launch(spec, tmp_path) as cluster_file:
        yield cluster_file, request.param


def connect(cluster_file, consistency):
    return shardps.Client(cluster_file,
                          worker=0 if consistency != "async" else -1)


@pytest.mark.parametrize("mode", ["coprocessor", "copy", "classic"])
def test_one_step_applies_sgd_exactly(cluster, mode):
    cluster_file, consistency = cluster
    with connect(cluster_file, consistency) as client:
        view = None if mode == "classic" else shardps.ModelView(client)
        net = make_net()
        torch_init = {n: p.detach().clone() for n, p in net.named_parameters()}
        opt = st.DistributedOptimizer(
            net, client, view=view, weights="copy" if mode == "copy" else "map")
        assert opt.mode == mode
        # The parameters hold the servers' values (normal:0.5), not torch's.
        before = {}
        for name, p in net.named_parameters():
            served = client.pull(name).wait().reshape(p.shape)
            assert np.array_equal(p.detach().numpy(), served), name
            assert not torch.equal(p.detach(), torch_init[name]), name
            before[name] = served.copy()
        x = torch.linspace(-1, 1, 2 * 36).reshape(2, 1, 6, 6)
        opt.zero_grad()
        (net(x) ** 2).sum().backward()
        grads = {n: p.grad.numpy().copy() for n, p in net.named_parameters()}
        opt.step()
        for name, p in net.named_parameters():
            expected = before[name] - np.float32(LR) * grads[name]
            assert np.array_equal(p.detach().numpy(), expected), name
            served = client.pull(name).wait().reshape(p.shape)
            assert np.array_equal(served, expected), name
        if mode == "coprocessor":
            # No copy: the parameter's memory is the view's mapping.
            w = net[2].weight
            assert w.data.data_ptr() == view["2.weight"].ctypes.data
        # A second step from the new weights: training goes on.
        opt.zero_grad()
        (net(x) ** 2).sum().backward()
        g2 = net[2].bias.grad.numpy().copy()
        b1 = net[2].bias.detach().numpy().copy()
        opt.step()
        assert np.array_equal(net[2].bias.detach().numpy(),
                              b1 - np.float32(LR) * g2)
        if consistency == "bsp":
            assert client.clock_count == 2


def test_classic_after_coprocessor_pulls_into_memory_of_its_own(cluster):
    # The module's parameters are over the read-only mapping first; the
    # classic optimizer must not pull into it (that would fault).
    cluster_file, consistency = cluster
    with connect(cluster_file, consistency) as client:
        net = make_net()
        st.DistributedOptimizer(net, client, view=shardps.ModelView(client))
        opt = st.DistributedOptimizer(net, client)
        x = torch.ones(1, 1, 6, 6)
        opt.zero_grad()
        net(x).sum().backward()
        g = net[2].bias.grad.numpy().copy()
        b = client.pull("2.bias").wait().copy()
        opt.step()
        assert np.array_equal(net[2].bias.detach().numpy(),
                              b - np.float32(LR) * g)


def test_refuses_a_module_that_is_not_the_spec(cluster):
    cluster_file, consistency = cluster
    with connect(cluster_file, consistency) as client:
        other = make_net()
        other.add_module("extra", torch.nn.Linear(3, 3))
        with pytest.raises(ValueError, match="not in the model spec"):
            st.DistributedOptimizer(other, client)
        bigger = make_net()
        bigger[2] = torch.nn.Linear(2 * 4 * 4, 4)
        with pytest.raises(ValueError, match=r"'2.weight' has shape \(4, 32\)"):
            st.DistributedOptimizer(bigger, client)
        with pytest.raises(ValueError, match="dtype"):
            st.DistributedOptimizer(make_net(), client, dtype="float64")
