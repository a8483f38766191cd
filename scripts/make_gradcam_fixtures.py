"""Parity fixtures for the `cam` crate: small models with this workspace's layouts, built in
PyTorch, explained with pytorch-grad-cam's GradCAM, saved under tests/fixtures/parity/.

    scripts/.venv/bin/pip install torch grad-cam
    cd scripts && ../scripts/.venv/bin/python make_gradcam_fixtures.py

Per model one `<name>.json`: the architecture, the float tensors of its `state_dict` under
PyTorch's names (no weight file is committed: the test packs them into safetensors in memory
and loads them through burn-store's PyTorch adapter), the input, the logits, the targets and
GradCAM's maps (ReLU, min-max normalised, resized to the input size)."""

import json
from pathlib import Path

import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from torch_models import CifarResNet, TutorialCnn

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/parity"


def settle_batch_norm(model, size):
    """Give BatchNorm non-trivial running statistics, then switch to inference."""
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(8, 3, *size) * 2 + 0.5)
    model.eval()


def fixture(name, model, architecture, size, targets):
    settle_batch_norm(model, size)
    images = torch.randn(len(targets), 3, *size)
    with torch.no_grad():
        logits = model(images)
    layer = model.layer3 if isinstance(model, CifarResNet) else model.act3
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    state = {
        key: {"shape": list(t.shape), "values": t.flatten().tolist()}
        for key, t in model.state_dict().items()
        if t.is_floating_point()
    }
    (OUT / f"{name}.json").write_text(json.dumps({
        "architecture": architecture,
        "state_dict": state,
        "num_classes": logits.shape[1],
        "image_size": list(size),
        "input": images.flatten().tolist(),
        "logits": logits.flatten().tolist(),
        "targets": targets,
        "cam": maps.flatten().tolist(),
    }))
    print(name, "logits", tuple(logits.shape), "cam", maps.shape)


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    fixture(
        "cifar_resnet8_w4",
        CifarResNet(depth=8, width=4, num_classes=5),
        {"name": "cifar_resnet", "depth": 8, "width": 4},
        (12, 12),
        [4, 1, 0],
    )
    fixture(
        "tutorial_cnn_tiny",
        TutorialCnn(num_classes=3, image_size=14, conv_channels=(3, 4, 3), kernel_sizes=(3, 3, 5), hidden=(10, 6)),
        {"name": "tutorial_cnn", "conv_channels": [3, 4, 3], "kernel_sizes": [3, 3, 5], "hidden": [10, 6]},
        (14, 14),
        [2, 0],
    )


if __name__ == "__main__":
    main()
