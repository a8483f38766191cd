"""The workspace's architectures written in PyTorch with the same layout and parameter names,
for benchmarks and for generating parity fixtures."""

import torch
from torch import nn
import torch.nn.functional as F


class TutorialCnn(nn.Module):
    """The Grad-CAM tutorial's SimpleCNN (see crates/model/src/tutorial_cnn.rs)."""

    def __init__(self, num_classes=2, image_size=128, conv_channels=(6, 9, 6), kernel_sizes=(5, 7, 9), hidden=(1024, 128)):
        super().__init__()
        c1, c2, c3 = conv_channels
        k1, k2, k3 = kernel_sizes
        self.norm1, self.conv1 = nn.BatchNorm2d(3), nn.Conv2d(3, c1, k1)
        self.norm2, self.conv2 = nn.BatchNorm2d(c1), nn.Conv2d(c1, c2, k2)
        self.norm3, self.conv3 = nn.BatchNorm2d(c2), nn.Conv2d(c2, c3, k3)
        # A module, not F.relu, so that Grad-CAM libraries can hook the features' output.
        self.act3 = nn.ReLU()
        side = image_size - (k1 - 1) - (k2 - 1) - (k3 - 1)
        self.fc1 = nn.Linear(c3 * side * side, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)

    def features(self, x):
        x = F.relu(self.conv1(self.norm1(x)))
        x = F.relu(self.conv2(self.norm2(x)))
        return self.act3(self.conv3(self.norm3(x)))

    def classifier(self, a):
        x = F.relu(self.fc1(torch.flatten(a, 1)))
        return self.fc3(F.relu(self.fc2(x)))

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.stride, self.pad = stride, (outputs - inputs) // 2

    def shortcut(self, x):
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet, option A shortcuts (see crates/model/src/cifar_resnet.rs)."""

    def __init__(self, depth=20, width=16, num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        stage = lambda i, o, s: nn.Sequential(*[BasicBlock(i if b == 0 else o, o, s if b == 0 else 1) for b in range(n)])
        self.layer1, self.layer2, self.layer3 = stage(w, w, 1), stage(w, 2 * w, 2), stage(2 * w, 4 * w, 2)
        self.linear = nn.Linear(4 * w, num_classes)

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def classifier(self, a):
        return self.linear(a.mean(dim=(2, 3)))

    def forward(self, x):
        return self.classifier(self.features(x))


class SameConv(nn.Conv2d):
    """A bias-free conv with TensorFlow's SAME padding (asymmetric at stride 2)."""

    def __init__(self, inputs, outputs, kernel, stride=1, groups=1):
        super().__init__(inputs, outputs, kernel, stride, 0, groups=groups, bias=False)

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in (x.shape[3], x.shape[2]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    def __init__(self, inputs, outputs, kernel, stride, expand):
        super().__init__()
        hidden = inputs * expand
        if expand != 1:
            self._expand_conv = SameConv(inputs, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._depthwise_conv = SameConv(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._project_conv = SameConv(hidden, outputs, 1)
        self._bn2 = nn.BatchNorm2d(outputs, eps=1e-3)
        self.expand, self.skip = expand, stride == 1 and inputs == outputs

    def forward(self, x):
        out = x
        if self.expand != 1:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.skip else out


B0 = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
      (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 with the key names of the pretrained file in ../shared (see
    crates/model/src/efficientnet_lite.rs); `divisor` shrinks every width for test fixtures."""

    def __init__(self, num_classes=1000, divisor=1):
        super().__init__()
        c = lambda n: max(n // divisor, 1)
        self._conv_stem = SameConv(3, c(32), 3, 2)
        self._bn0 = nn.BatchNorm2d(c(32), eps=1e-3)
        blocks, inputs = [], c(32)
        for repeats, kernel, stride, expand, outputs in B0:
            for i in range(repeats):
                blocks.append(MBConv(inputs, c(outputs), kernel, stride if i == 0 else 1, expand))
                inputs = c(outputs)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(inputs, c(1280), 1)
        self._bn1 = nn.BatchNorm2d(c(1280), eps=1e-3)
        # A module, not F.relu6, so that Grad-CAM libraries can hook the features' output.
        self.head_act = nn.ReLU6()
        self._fc = nn.Linear(c(1280), num_classes)

    def features(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.head_act(self._bn1(self._conv_head(x)))

    def classifier(self, a):
        return self._fc(a.mean(dim=(2, 3)))

    def forward(self, x):
        return self.classifier(self.features(x))


VGG_STAGES = {11: [1, 1, 2, 2, 2], 13: [2, 2, 2, 2, 2], 16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}


class Vgg(nn.Module):
    """torchvision's VGG with its key names (`features.N`, `classifier.{0,3,6}`) and
    configurable widths (see crates/model/src/vgg.rs). With width 64 and hidden 4096 its
    state_dict has torchvision's keys and shapes (checked in make_gradcam_fixtures.py)."""

    def __init__(self, depth=19, batch_norm=False, width=64, hidden=4096, num_classes=1000):
        super().__init__()
        layers, inputs = [], 3
        for stage, convs in enumerate(VGG_STAGES[depth]):
            outputs = width * [1, 2, 4, 8, 8][stage]
            for _ in range(convs):
                layers.append(nn.Conv2d(inputs, outputs, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(outputs))
                layers.append(nn.ReLU())
                inputs = outputs
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(inputs * 49, hidden), nn.ReLU(), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inputs, planes, stride):
        super().__init__()
        outputs = planes * 4
        self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, outputs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outputs)
        self.downsample = downsample(inputs, outputs, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class TorchvisionBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inputs, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample(inputs, planes, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


def downsample(inputs, outputs, stride):
    if stride == 1 and inputs == outputs:
        return None
    return nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))


RESNET_STAGES = {18: ([2, 2, 2, 2], TorchvisionBasicBlock), 34: ([3, 4, 6, 3], TorchvisionBasicBlock),
                 50: ([3, 4, 6, 3], Bottleneck), 101: ([3, 4, 23, 3], Bottleneck)}


class ResNet(nn.Module):
    """torchvision's ResNet (v1.5 Bottleneck) with its key names and a configurable base width
    (see crates/model/src/resnet.rs)."""

    def __init__(self, depth=50, width=64, num_classes=1000):
        super().__init__()
        blocks, block = RESNET_STAGES[depth]
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inputs = width
        for index, count in enumerate(blocks):
            layer = []
            for i in range(count):
                layer.append(block(inputs, width << index, (1 if index == 0 else 2) if i == 0 else 1))
                inputs = (width << index) * block.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(inputs, num_classes)

    def features(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))
