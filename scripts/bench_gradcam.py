"""Batch Grad-CAM throughput of pytorch-grad-cam's GradCAM on the same network and batch as
`cargo run -p explain --example gradcam_speed`: a randomly initialised ResNet-20 at 32×32, the
predicted class of each image, maps resized to the input. Prints
`torch gradcam resnet20 batch=<n> img/s median=<x> runs=[...]`."""

import statistics
import sys
import time

import torch
from pytorch_grad_cam import GradCAM

from torch_models import CifarResNet


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    model = CifarResNet().eval()
    images = torch.randn(batch, 3, 32, 32)
    with GradCAM(model=model, target_layers=[model.layer3]) as cam:
        cam(input_tensor=images, targets=None)  # warm-up: None = each predicted class
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            maps = cam(input_tensor=images, targets=None)
            runs.append(batch / (time.perf_counter() - start))
            assert maps.shape == (batch, 32, 32)
    shown = ", ".join(f"{r:.1f}" for r in runs)
    print(f"torch gradcam resnet20 batch={batch} img/s median={statistics.median(runs):.1f} runs=[{shown}] threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
