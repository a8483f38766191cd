"""Training throughput of the same networks and batch as `cargo run -p train --example throughput`,
in PyTorch: prints `torch <arch> batch=<n> img/s median=<x> runs=[...]`.

    python bench_train.py [resnet20|tutorial_cnn] [batch] [steps] [repeats] [cpu|cuda]

On a GPU the data stays on the device and PyTorch keeps its defaults (cuDNN convolutions in TF32,
matrix products in f32); the GPU is synchronised at the end of each run of `steps` steps."""

import statistics
import sys
import time

import torch
from torch import nn

from torch_models import CifarResNet, TutorialCnn


def main():
    arch = sys.argv[1] if len(sys.argv) > 1 else "resnet20"
    batch, steps, repeats = (int(a) for a in (sys.argv[2:5] + ["64", "10", "5"][len(sys.argv[2:5]):]))
    device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
    if arch == "tutorial_cnn":
        model, size, classes = TutorialCnn(), 128, 2
    else:
        model, size, classes = CifarResNet(), 32, 10
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.arange(batch, device=device) % classes
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    step()  # warm-up
    sync()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        runs.append(batch * steps / (time.perf_counter() - start))
    shown = ", ".join(f"{r:.1f}" for r in runs)
    print(f"torch {arch} batch={batch} img/s median={statistics.median(runs):.1f} runs=[{shown}] threads={torch.get_num_threads()} device={device}")


if __name__ == "__main__":
    main()
