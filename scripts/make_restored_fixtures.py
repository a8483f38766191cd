"""References computed on the networks of the existing parity fixtures, their weights and
images read back from the JSON (exact float32), so that the big fixtures stay as they are:

- shapley.json: pytorch-grad-cam 1.5.7's `ShapleyCAM` under three targets (the logit, the
  softmax and the ReST score): {fixture name: {"logit"|"probability"|"rest": maps}};
- fullgrad.json: its `FullGrad` of each image's fixture target: {fixture name: maps};
- aug_smooth.json: `FullGrad` and `ShapleyCAM` (logit) with `aug_smooth=True` on two networks:
  {fixture name: {"fullgrad"|"shapleycam": maps}}.

    cd scripts && ../scripts/.venv/bin/python make_restored_fixtures.py

Maps are post-processed as pytorch-grad-cam returns them (min-max, at the input's size)."""

import json

import torch
import torchvision
from pytorch_grad_cam import FullGrad, ShapleyCAM
from pytorch_grad_cam.utils.model_targets import (ClassifierOutputReST, ClassifierOutputSoftmaxTarget,
                                                  ClassifierOutputTarget)
from torchvision.models.convnext import CNBlockConfig

from make_gradcam_fixtures import OUT, short, target_layer, vit_reshape
from torch_models import CifarResNet, EfficientNetLite, ResNet, TutorialCnn, Vgg

# Fixture name → (the network, untrained: its weights come from the fixture; reshape_transform).
NETWORKS = {
    "cifar_resnet8_w4": lambda: (CifarResNet(depth=8, width=4, num_classes=5), None),
    "tutorial_cnn_tiny": lambda: (TutorialCnn(num_classes=3, image_size=14, conv_channels=(3, 4, 3),
                                              kernel_sizes=(3, 3, 5), hidden=(10, 6)), None),
    "vgg11_bn_small": lambda: (Vgg(11, batch_norm=True, width=2, hidden=8, num_classes=4), None),
    "resnet18_small": lambda: (ResNet(18, width=2, num_classes=5), None),
    "mobilenet_v3_small": lambda: (torchvision.models.mobilenet_v3_large(width_mult=0.1, num_classes=5), None),
    "convnext_small": lambda: (torchvision.models.ConvNeXt(
        [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 24, 2), CNBlockConfig(24, 32, 1), CNBlockConfig(32, None, 2)],
        num_classes=5), None),
    "vit_small": lambda: (torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24, num_classes=5),
        vit_reshape(4)),
    "swin_small": lambda: (torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=4, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=[4, 4],
        mlp_ratio=2.0, num_classes=5), lambda t: t.permute(0, 3, 1, 2)),
}


def mobilenet_v2():
    """As make_gradcam_fixtures.py builds it: a last convolution of 48 channels."""
    model = torchvision.models.mobilenet_v2(width_mult=0.1, num_classes=5)
    model.features[-1] = torchvision.ops.Conv2dNormActivation(32, 48, kernel_size=1, activation_layer=torch.nn.ReLU6)
    model.classifier[1] = torch.nn.Linear(48, 5)
    return model, None


# FullGrad reads every Conv2d and BatchNorm2d with a bias, whatever the target layer.
FULLGRAD_NETWORKS = {
    **NETWORKS,
    "vgg19_small": lambda: (Vgg(19, batch_norm=False, width=2, hidden=8, num_classes=4), None),
    "efficientnet_lite_d16": lambda: (EfficientNetLite(num_classes=6, divisor=16), None),
    "mobilenet_v2_small": mobilenet_v2,
    "densenet_small": lambda: (torchvision.models.DenseNet(
        growth_rate=4, block_config=[2, 3, 2, 2], num_init_features=8, bn_size=2, num_classes=5), None),
}

class ShapleyCAMOnTokens(ShapleyCAM):
    """pytorch-grad-cam 1.5.7's ShapleyCAM reshapes the gradients of a transformer's tokens but
    weighs the unreshaped tokens (ViT: "Invalid activation shape"; Swin: channels taken for
    rows). Its intent, the weights laid on the reshaped tokens, is the reference there."""

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth=False):
        weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        grid = self.activations_and_grads.reshape_transform(activations).detach().cpu().numpy()
        return (weights[:, :, None, None] * grid).sum(axis=1)


TARGETS = {"logit": ClassifierOutputTarget, "probability": ClassifierOutputSoftmaxTarget,
           "rest": ClassifierOutputReST}


def restored(name):
    """The fixture's network with its weights, in inference mode, and its images and targets."""
    fixture = json.loads((OUT / f"{name}.json").read_text())
    model, reshape = FULLGRAD_NETWORKS[name]()
    state = {k: torch.tensor(t["values"], dtype=torch.float32).reshape(t["shape"])
             for k, t in fixture["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    integers = {k for k, t in model.state_dict().items() if not t.is_floating_point()}
    assert not unexpected and set(missing) <= integers, (missing, unexpected)
    model.eval()
    size = fixture["image_size"]
    images = torch.tensor(fixture["input"], dtype=torch.float32).reshape(len(fixture["targets"]), 3, *size)
    with torch.no_grad():
        logits = model(images).flatten()
    worst = max(abs(a - b) for a, b in zip(logits.tolist(), fixture["logits"]))
    assert worst < 1e-4, f"{name}: the restored network's logits differ by {worst}"
    return model, reshape, images, fixture["targets"]


def fullgrad(name):
    model, _, images, targets = restored(name)
    cam = FullGrad(model=model, target_layers=[])
    try:
        result = cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        cam.activations_and_grads.gradients = []
        cam.activations_and_grads.release()
    print(name, "fullgrad", result.shape, "layers", len(cam.bias_data))
    return [round(v, 6) for v in short(result)]


def aug_smoothed(name):
    model, _, images, targets = restored(name)
    maps = {}
    for method, cls in (("fullgrad", FullGrad), ("shapleycam", ShapleyCAM)):
        cam = cls(model=model, target_layers=[target_layer(model)])
        try:
            result = cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets], aug_smooth=True)
        finally:
            cam.activations_and_grads.gradients = []
            cam.activations_and_grads.release()
        maps[method] = [round(v, 6) for v in short(result)]
    return maps


def main():
    (OUT / "aug_smooth.json").write_text(json.dumps(
        {name: aug_smoothed(name) for name in ("cifar_resnet8_w4", "resnet18_small")}))
    (OUT / "fullgrad.json").write_text(json.dumps({name: fullgrad(name) for name in FULLGRAD_NETWORKS}))
    out = {}
    for name in NETWORKS:
        model, reshape, images, targets = restored(name)
        maps = {}
        for kind, target in TARGETS.items():
            kind_of_cam = ShapleyCAM if reshape is None else ShapleyCAMOnTokens
            cam = kind_of_cam(model=model, target_layers=[target_layer(model)], reshape_transform=reshape)
            try:
                # The flash attention kernel has no second derivative; the plain one has.
                with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                    result = cam(input_tensor=images, targets=[target(t) for t in targets])
            finally:
                # Its clean-up detaches the kept gradients in place, which fails when they are
                # views (a flattening head makes them so): they are dropped first instead.
                cam.activations_and_grads.gradients = []
                cam.activations_and_grads.release()
            maps[kind] = [round(v, 6) for v in short(result)]
        out[name] = maps
        moved = {k: max(abs(a - b) for a, b in zip(v, maps["logit"])) for k, v in maps.items() if k != "logit"}
        print(name, "largest change from the logit's map:", moved)
    (OUT / "shapley.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
