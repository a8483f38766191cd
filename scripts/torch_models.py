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
