#!/usr/bin/python3
"""Fashion-MNIST MLP (784-256-128-10, ReLU) in PyTorch, trained through a
local shardps cluster: 2 trainer processes push gradients, Adam runs on the
servers, the trainers read the weights from the segments (co-processor
mode) or pull them (--mode classic). Target: 0.87 test accuracy.

  PYTHONPATH=build/python /usr/bin/python3 examples/python/fashion_mnist_mlp.py
  ... --mode classic --epochs 5 --workers 1
"""
import sys

import torch

import fmnist_common


def make_net():
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


if __name__ == "__main__":
    sys.exit(fmnist_common.main(make_net, "mlp", 0.87, default_epochs=10))
