#!/usr/bin/python3
"""Fashion-MNIST CNN in PyTorch (conv 5x5 1->16, pool, conv 5x5 16->32,
pool, dense 512->10: the C++ example's network), trained through a local
shardps cluster with Adam on the servers. Target: 0.90 test accuracy.

  PYTHONPATH=build/python /usr/bin/python3 examples/python/fashion_mnist_cnn.py
"""
import sys

import torch

import fmnist_common


def make_net():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(512, 10))


if __name__ == "__main__":
    sys.exit(fmnist_common.main(make_net, "cnn", 0.90, default_epochs=10))
