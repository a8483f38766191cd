"""ONNX fixtures for the `onnx` crate and explain's `--arch onnx`: small networks with seeded
random weights, one per family of operators users bring, exported with both of torch's
exporters, run by onnxruntime and explained by pytorch-grad-cam on the PyTorch model.

    scripts/.venv/bin/pip install torch torchvision grad-cam onnx onnxruntime onnxscript
    cd scripts && ../scripts/.venv/bin/python make_onnx_fixtures.py [NAME...]

Per network, under tests/fixtures/onnx/:
- `<name>.script.onnx` (TorchScript-based exporter, `dynamo=False`, opset 17) and
  `<name>.dynamo.onnx` (`dynamo=True`, opset 18), with a dynamic batch dimension;
- `<name>.static.onnx`: the TorchScript export of a batch of 1, without a dynamic batch;
- `<name>.json`: the input batch, onnxruntime's logits for each export, the Grad-CAM maps
  pytorch-grad-cam gives at the layer the tests name (ReLU, min-max, at the input's size),
  and that layer's torch module path."""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/onnx"
SIZE = 32
CLASSES = 5


def short(values):
    """float32 values in their shortest decimal form (exact once parsed back as f32)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    return [float(np.format_float_positional(v, unique=True)) for v in flat]


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout))


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduced):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class BlockD(nn.Module):
    """A ResNet-D block: the shortcut average-pools (ceil_mode) before its 1x1 convolution."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.act = nn.SiLU()
        self.conv2 = conv_bn(cout, cout)
        self.se = SqueezeExcite(cout, 4)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False),
                                      nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.se(self.conv2(self.act(self.conv1(x))))
        return self.relu(y + (x if self.down is None else self.down(x)))


class TinyResNetD(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 8), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.layer1 = nn.Sequential(BlockD(8, 8, 1), BlockD(8, 16, 2))
        self.layer2 = nn.Sequential(BlockD(16, 16, 2))
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class TinyMobile(nn.Module):
    """Depthwise and grouped convolutions, HardSwish, HardSigmoid, ReLU6, GELU, a
    flatten → Linear head with dropout."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 8, 3, 2), nn.Hardswish(),
            conv_bn(8, 8, 3, 1, groups=8), nn.ReLU6(),
            conv_bn(8, 16, 1), nn.GELU(),
            conv_bn(16, 16, 3, 2, groups=4), nn.Hardswish(),
        )
        self.gate = nn.Conv2d(16, 16, 1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16 * 8 * 8, CLASSES))

    def forward(self, x):
        x = self.features(x)
        x = x * nn.functional.hardsigmoid(self.gate(x))
        return self.classifier(torch.flatten(x, 1))


class ConvNextBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.rand(dim) + 0.5)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(nn.functional.gelu(self.pwconv1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class TinyConvNext(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, 4)
        self.stages = nn.Sequential(ConvNextBlock(16), ConvNextBlock(16))
        self.norm = nn.LayerNorm(16, eps=1e-6)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.head(self.norm(x.mean((2, 3))))


class Attention(nn.Module):
    """timm's ViT attention: one qkv Linear, heads split by reshape and permute."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyVit(nn.Module):
    """A timm-style ViT: patches, a class token, position embeddings, two blocks."""

    def __init__(self, dim=16, patch=8):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, (SIZE // patch) ** 2 + 1, dim) * 0.5)
        self.blocks = nn.Sequential(Block(dim, 2), Block(dim, 2))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit_reshape(tensor):
    side = int(round((tensor.shape[1] - 1) ** 0.5))
    return tensor[:, 1:, :].reshape(tensor.size(0), side, side, tensor.size(2)).permute(0, 3, 1, 2)


# name → (the network, the torch module path of the Grad-CAM layer, its reshape_transform)
NETWORKS = {
    "resnet_d": (TinyResNetD, "layer2", None),
    "mobile": (TinyMobile, "features", None),
    "convnext": (TinyConvNext, "stages", None),
    "vit": (TinyVit, "blocks.1.norm1", vit_reshape),
}


def settle_batch_norm(model):
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(8, 3, SIZE, SIZE) * 2 + 0.5)
    model.eval()


def module(model, path):
    for part in path.split("."):
        model = model[int(part)] if part.isdigit() else getattr(model, part)
    return model


def export(model, images, path, dynamo):
    kwargs = dict(input_names=["images"], output_names=["logits"])
    if dynamo:
        torch.onnx.export(model, (images,), path, dynamo=True, opset_version=18,
                          dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}},
                          external_data=False, **kwargs)
    else:
        torch.onnx.export(model, (images,), path, dynamo=False, opset_version=17,
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})[0]


def fixture(name):
    net, layer, reshape = NETWORKS[name]
    torch.manual_seed(sum(map(ord, name)))
    model = net()
    settle_batch_norm(model)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        logits = model(images)
    targets = [int(t) for t in logits.argmax(1)]
    OUT.mkdir(parents=True, exist_ok=True)
    exports = {}
    for exporter, dynamo in [("script", False), ("dynamo", True)]:
        ort = export(model, images, OUT / f"{name}.{exporter}.onnx", dynamo)
        print(f"{name} {exporter}: onnxruntime vs torch {np.abs(ort - logits.numpy()).max():.2e}")
        exports[exporter] = short(ort)
    # Without a dynamic batch: the TorchScript exporter then bakes batch 1 into the shape
    # arithmetic, as many users' exports do. The tests run it on the same batch of 2.
    torch.onnx.export(model, (images[:1],), OUT / f"{name}.static.onnx", dynamo=False,
                      opset_version=17, input_names=["images"], output_names=["logits"])
    with GradCAM(model=model, target_layers=[module(model, layer)], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    (OUT / f"{name}.json").write_text(json.dumps({
        "input_shape": list(images.shape),
        "input": short(images),
        "classes": CLASSES,
        "logits": exports,
        "targets": targets,
        "layer": layer,
        "gradcam": short(maps),
    }))


def main(names):
    for name in names or NETWORKS:
        fixture(name)


if __name__ == "__main__":
    main(sys.argv[1:])
