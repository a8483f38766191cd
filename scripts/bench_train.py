"""Training throughput of the same networks and batch as `cargo run -p train --example throughput`,
in PyTorch on the CPU: prints `torch <arch> batch=<n> img/s median=<x> runs=[...]`."""

import statistics
import sys
import time

import torch
from torch import nn

from torch_models import CifarResNet, TutorialCnn


def main():
    arch = sys.argv[1] if len(sys.argv) > 1 else "resnet20"
    batch, steps, repeats = (int(a) for a in (sys.argv[2:5] + ["64", "10", "5"][len(sys.argv[2:5]):]))
    if arch == "tutorial_cnn":
        model, size, classes = TutorialCnn(), 128, 2
    else:
        model, size, classes = CifarResNet(), 32, 10
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, size, size)
    labels = torch.arange(batch) % classes
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    step()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        runs.append(batch * steps / (time.perf_counter() - start))
    shown = ", ".join(f"{r:.1f}" for r in runs)
    print(f"torch {arch} batch={batch} img/s median={statistics.median(runs):.1f} runs=[{shown}] threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
