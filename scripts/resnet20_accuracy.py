"""Top-1 accuracy of the pretrained CIFAR ResNet-20 (../shared/weights/resnet20-cifar10) on a
folder of CIFAR JPEGs, in PyTorch: the reference for `explain --arch resnet20 --accuracy`.

    python resnet20_accuracy.py WEIGHTS.th DATA_DIR
"""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from torch_models import CifarResNet

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
weights, root = sys.argv[1], Path(sys.argv[2])
state = torch.load(weights, map_location="cpu", weights_only=True)["state_dict"]
model = CifarResNet(20)
model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
model.eval()
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
correct = total = 0
for label, name in enumerate(CLASSES):
    files = sorted((root / name).glob("*.jpg"))
    for i in range(0, len(files), 500):
        batch = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255 for f in files[i:i + 500]])
        x = torch.from_numpy(((batch - mean) / std).transpose(0, 3, 1, 2)).float()
        with torch.no_grad():
            correct += int((model(x).argmax(1) == label).sum())
        total += len(batch)
print(f"PyTorch: {correct}/{total} correct ({100 * correct / total:.2f}%)")
