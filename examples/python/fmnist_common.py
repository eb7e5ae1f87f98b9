"""Shared by fashion_mnist_mlp.py and fashion_mnist_cnn.py: Fashion-MNIST
from Debian's dataset-fashion-mnist, a local cluster, N trainer processes
each on its own slice of the training set, Adam on the servers.

Run without --cluster, a script writes the model spec from its torch module
(shardps.torch.spec_from_module), starts `shardps launch` in a fresh
directory on /dev/shm, starts --workers trainer processes of itself
(--cluster F --worker i) and stops everything when they end. Worker 0
prints loss, test accuracy, samples/s per epoch and the time to the target
accuracy.
"""

import argparse
import gzip
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
                  for i in range(dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def parse(argv, default_epochs):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cluster", help="train through this cluster (a worker)")
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--epochs", type=int, default=default_epochs)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--mode", choices=["coprocessor", "copy", "classic"],
                   default="coprocessor",
                   help="weights mapped from the segments (coprocessor), "
                   "copied from them each step (copy) or pulled (classic)")
    p.add_argument("--dtype", default="float32",
                   choices=["float32", "float16", "bfloat16"],
                   help="the gradients' wire format")
    p.add_argument("--data", default=DATA)
    p.add_argument("--limit", type=int, default=0,
                   help="use only this many training images (tests)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shardps", default=str(REPO / "build" / "cli" /
                                           "shardps"))
    return p.parse_args(argv)


def evaluate(net, x, y):
    with torch.no_grad():
        correct = 0
        for at in range(0, len(x), 1000):
            correct += (net(x[at:at + 1000]).argmax(1) == y[at:at + 1000]
                        ).sum().item()
    return correct / len(x)


def train(args, make_net, target):
    import shardps
    import shardps.torch
    torch.set_num_threads(1)  # servers and trainers share the cores
    torch.manual_seed(args.seed)
    net = make_net()
    x, y = load(args.data, "train")
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    mine = torch.arange(args.worker, len(x), args.workers)
    if args.worker == 0:
        tx, ty = load(args.data, "t10k")
    try:
        # A clock worker when the model is bsp/ssp ...
        client = shardps.Client(args.cluster, worker=args.worker,
                                request_timeout=120.0, push_dtype=args.dtype)
    except shardps.InvalidArgumentError:
        # ... and an async model has no worker count.
        client = shardps.Client(args.cluster, request_timeout=120.0,
                                push_dtype=args.dtype)
    view = None if args.mode == "classic" else shardps.ModelView(client)
    opt = shardps.torch.DistributedOptimizer(
        net, client, view=view, dtype=args.dtype,
        weights="copy" if args.mode == "copy" else "map")
    if args.worker == 0:
        print("worker 0: %d training images of %d, %d test images, %s mode, "
              "%s consistency" % (len(mine), len(x), len(tx), opt.mode,
                                  client.consistency), flush=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed * 7919 + args.worker)
    start = time.monotonic()
    reached = None
    acc = 0.0
    for epoch in range(1, args.epochs + 1):
        order = mine[torch.randperm(len(mine), generator=gen)]
        epoch_start = time.monotonic()
        loss_sum, steps = 0.0, 0
        for at in range(0, len(order) - args.batch + 1, args.batch):
            idx = order[at:at + args.batch]
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            steps += 1
        epoch_s = time.monotonic() - epoch_start
        if args.worker != 0:
            continue
        acc = evaluate(net, tx, ty)
        total = time.monotonic() - start
        if reached is None and acc >= target:
            reached = (total, epoch)
        print("epoch %2d  loss %.4f  test accuracy %.4f  %.0f samples/s  "
              "%.1f s" % (epoch, loss_sum / max(steps, 1), acc,
                          steps * args.batch / epoch_s, total), flush=True)
    if args.worker == 0:
        print("worker 0: %s" % ("%.2f reached in %.1f s (epoch %d)" %
                                (target, *reached) if reached else
                                "%.2f not reached" % target), flush=True)
        print("final test accuracy %.4f after %d epochs, %.1f s" %
              (acc, args.epochs, time.monotonic() - start), flush=True)
    client.close()
    return 0 if args.worker != 0 or reached else 3


def _wait_ready(proc, deadline_s):
    out = b""
    deadline = time.monotonic() + deadline_s
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
        if b" ready: " in out:
            return
    raise RuntimeError("the cluster did not start:\n" + out.decode())


def orchestrate(args, argv, make_net, name):
    """Spec, cluster, trainers; returns worker 0's exit code."""
    import shardps.torch
    if not os.path.exists(args.shardps):
        sys.exit("%s: no such file: build it (cmake --build build --target "
                 "shardps) or pass --shardps" % args.shardps)
    work = tempfile.mkdtemp(prefix="shardps-py-%s." % name,
                            dir=os.environ.get("TMPDIR", "/dev/shm"))
    launcher = None
    trainers = []
    try:
        torch.manual_seed(args.seed)
        spec = os.path.join(work, name + ".toml")
        # init="current": the servers start from torch's default init
        # distribution; the trainers adopt the servers' values.
        shardps.torch.spec_from_module(make_net(), spec,
                                       model_name="py_fmnist_" + name,
                                       optimizer="adam", lr=args.lr,
                                       block_floats=65536 if name == "mlp"
                                       else 4096)
        launcher = subprocess.Popen(
            [args.shardps, "launch", "--spec", spec, "--shards",
             str(args.shards), "--storage", work, "--cluster-file",
             os.path.join(work, "cluster.toml")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _wait_ready(launcher, 60)
        print("== %d shard(s) up; %d trainer(s), %s mode" %
              (args.shards, args.workers, args.mode), flush=True)
        for w in range(args.workers):
            trainers.append(subprocess.Popen(
                [sys.executable, sys.argv[0], *argv, "--cluster",
                 os.path.join(work, "cluster.toml"), "--worker", str(w)]))
        codes = [t.wait() for t in trainers]
        trainers = []
        return codes[0] if all(c in (0, 3) for c in codes) else 1
    finally:
        for t in trainers:
            t.kill()
            t.wait()
        if launcher is not None:
            launcher.send_signal(signal.SIGINT)
            try:
                launcher.wait(30)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait()
        shutil.rmtree(work, ignore_errors=True)


def main(make_net, name, target, default_epochs):
    argv = sys.argv[1:]
    args = parse(argv, default_epochs)
    if args.cluster:
        return train(args, make_net, target)
    return orchestrate(args, argv, make_net, name)
