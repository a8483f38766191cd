"""Time per image of each pytorch-grad-cam method on a randomly initialised torchvision
network (the twin of `cargo run -p explain --example methods_speed`).

    python bench_methods.py ARCH BATCH REPEATS [cpu|cuda]

BENCH_METHODS=a,b times only those methods.
"""
import contextlib
import io
import os
import sys
import time

import torch
import torchvision
from torchcam.methods import CAM as TorchcamCAM, ISCAM as TorchcamISCAM, SSCAM as TorchcamSSCAM
from torchcam.methods import SmoothGradCAMpp as TorchcamSmoothGradCAMpp
from pytorch_grad_cam import (FEM, KPCA_CAM, FinerCAM, AblationCAM, EigenCAM, EigenGradCAM, GradCAM, GradCAMElementWise,
                              GradCAMPlusPlus, HiResCAM, LayerCAM, RandomCAM, ScoreCAM, XGradCAM)
from pytorch_grad_cam import SESS, DeepFeatureFactorization, FullGrad, RefineCAM, ShapleyCAM

METHODS = {
    "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM,
    "layercam": LayerCAM, "gradcam-elementwise": GradCAMElementWise, "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM, "scorecam": ScoreCAM, "ablationcam": AblationCAM,
    "fem": FEM, "randomcam": RandomCAM, "kpcacam": KPCA_CAM, "finercam": FinerCAM,
    "cam": lambda model, target_layers: TorchCam(TorchcamCAM, model, target_layers[0]),
    "iscam": lambda model, target_layers: TorchCam(TorchcamISCAM, model, target_layers[0]),
    "sscam": lambda model, target_layers: TorchCam(TorchcamSSCAM, model, target_layers[0]),
    "smoothgradcam++": lambda model, target_layers: TorchCam(TorchcamSmoothGradCAMpp, model, target_layers[0]),
    "refinecam": RefineCAM, "shapleycam": ShapleyCAM, "fullgrad": FullGrad,
    "sess": SESS, "dff": lambda model, target_layers: Dff(model, target_layers[0]),
}
if os.environ.get("BENCH_METHODS"):
    chosen = os.environ["BENCH_METHODS"].split(",")
    METHODS = {name: cls for name, cls in METHODS.items() if name in chosen}


class TorchCam:
    """A torch-cam method behind pytorch-grad-cam's calling convention: each image's top class,
    maps at the layer's resolution (as the workspace's raw maps are timed)."""
    def __init__(self, method, model, layer):
        self.model = model
        self.extractor = method(model, target_layer=layer)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.extractor.remove_hooks()

    def __call__(self, input_tensor, targets=None):
        with torch.no_grad():
            scores = self.model(input_tensor)
        return self.extractor(class_idx=scores.argmax(1).tolist(), scores=scores)[0].cpu().numpy()

class Dff:
    """Deep Feature Factorization behind the same calling convention: 5 concepts, each scored by
    the classifier where it is one Linear layer (the workspace times the factorisation alone)."""
    def __init__(self, model, layer):
        head = getattr(model, "fc", None)
        self.dff = DeepFeatureFactorization(model=model, target_layer=layer, computation_on_concepts=head)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.dff.activations_and_grads.release()

    def __call__(self, input_tensor, targets=None):
        return self.dff(input_tensor, 5)

arch, batch, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
model = getattr(torchvision.models, arch)().eval().to(device)
layer = model.layer4 if arch.startswith("resnet") else model.features[-2]
images = torch.randn(batch, 3, 224, 224, device=device)
for name, cls in METHODS.items():
    if name == "cam" and not arch.startswith("resnet"):
        continue  # torch-cam's CAM needs one Linear layer after the pooling
    with contextlib.redirect_stdout(io.StringIO()):  # FullGrad prints that it ignores the layer
        explainer = cls(model=model, target_layers=[layer])
    with explainer as cam:
        cam(input_tensor=images, targets=None)  # warm-up
        times = []
        for _ in range(1 if name in ("scorecam", "iscam", "sscam", "sess") else repeats):
            start = time.perf_counter()
            cam(input_tensor=images, targets=None)  # returns NumPy maps: synchronises the GPU
            times.append(1000 * (time.perf_counter() - start) / batch)
    times.sort()
    print(f"torch {name} ms/image median={times[len(times) // 2]:.2f}", flush=True)
