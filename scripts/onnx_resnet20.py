"""The shared ResNet-20 (CIFAR-10) two ways: `explain --arch resnet20` on its PyTorch weights,
and `explain --arch onnx` on its export (TorchScript exporter, opset 17, made here in a
temporary folder from `scripts/torch_models.py`). Prints the largest differences of the maps
(`cam.npy`), the raw maps and the predicted probabilities over N CIFAR images, for the methods
given; the issue's bar is 1e-5.

    scripts/.venv/bin/python scripts/onnx_resnet20.py [--shared ../shared] [--images 16]
        [--methods gradcam,gradcam++,scorecam,layercam]

Nothing of ../shared is written into the project: the export and the outputs stay in /tmp."""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_models import CifarResNet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def explain(args, out):
    command = ["cargo", "run", "-q", "-p", "explain", "--", *args, "--save-raw",
               "--out", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def maps(out, name):
    return {p.parent.relative_to(out).as_posix(): np.load(p) for p in sorted(out.rglob(name))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--methods", default="gradcam,gradcam++,scorecam,layercam")
    args = parser.parse_args()
    weights = args.shared / "weights/resnet20-cifar10/resnet20-12fca82f.th"
    if not weights.is_file():
        sys.exit(f"{weights} is missing: pass --shared DIR")
    classes = sorted((args.shared / "data/cifar10-jpeg/train").iterdir())
    images = [sorted(c.iterdir())[i] for i in range(args.images // len(classes) + 1)
              for c in classes][: args.images]

    model = CifarResNet(20).eval()
    state = torch.load(weights, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_file = tmp / "resnet20.onnx"
        torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), onnx_file, dynamo=False,
                          opset_version=17, input_names=["images"], output_names=["logits"])
        common = ["--image", *map(str, images), "--method", args.methods,
                  "--limit", str(len(images))]
        native, exported = tmp / "native", tmp / "onnx"
        explain(["--arch", "resnet20", "--weights", str(weights), *common], native)
        explain(["--arch", "onnx", "--weights", str(onnx_file), "--layer", "layer3", *common],
                exported)
        print(f"{len(images)} CIFAR-10 images, methods {args.methods}")
        for name in ["cam.npy", "cam_raw.npy"]:
            a, b = maps(native, name), maps(exported, name)
            assert a.keys() == b.keys() and a, (sorted(a)[:3], sorted(b)[:3])
            worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
            print(f"{name}: {len(a)} maps, max |native − onnx| {worst:.2e}")
        rows = lambda out: [r for f in sorted(out.rglob("summary.json"))
                            for r in json.loads(f.read_text())]
        a, b = rows(native), rows(exported)
        assert len(a) == len(b) and a
        same = all(x["predicted_index"] == y["predicted_index"] for x, y in zip(a, b))
        worst = max(abs(x["probability"] - y["probability"]) for x, y in zip(a, b))
        print(f"predictions: {'identical' if same else 'DIFFER'}, "
              f"max |native − onnx| probability {worst:.2e}")

if __name__ == "__main__":
    main()
