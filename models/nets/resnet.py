"""ResNets written here (there is no CPU torchvision): the CIFAR-style network of He et al. 2016
(section 4.2, depth 6n+2) and the ImageNet ResNet-18/34/50/101/152, layer for layer and name for
name as torchvision builds them, so a torchvision state_dict loads into them. The blocks apply
ReLU as a function, not one shared module called twice: PT2E's x86 quantizer cannot match a
module whose calls are two graph outputs ("Input partition has more than one output node")."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, width, stride), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width), nn.BatchNorm2d(width)
        self.downsample = shortcut(cin, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = conv1x1(cin, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, width * 4), nn.BatchNorm2d(width * 4)
        self.downsample = shortcut(cin, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))


def shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    """Projection shortcut where the shape changes (option B of the paper), identity elsewhere."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """A stem (conv1, bn1, relu, maxpool), stages layer1..layerN of blocks, average pool, fc."""

    def __init__(self, block: type[BasicBlock | Bottleneck], blocks: list[int], widths: list[int],
                 conv1: nn.Conv2d, maxpool: nn.Module, num_classes: int):
        super().__init__()
        self.conv1, self.bn1 = conv1, nn.BatchNorm2d(conv1.out_channels)
        self.relu, self.maxpool = nn.ReLU(inplace=True), maxpool
        cin, self.stage_names = conv1.out_channels, []
        for i, (count, width) in enumerate(zip(blocks, widths, strict=False)):
            layers = []
            for j in range(count):
                layers.append(block(cin, width, stride=2 if i > 0 and j == 0 else 1))
                cin = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            self.stage_names.append(f"layer{i + 1}")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming for convolutions, the last BN of each block at zero."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        last_bn = getattr(module, "bn3", None) or getattr(module, "bn2", None)
        if isinstance(module, (BasicBlock, Bottleneck)) and last_bn is not None:
            nn.init.zeros_(last_bn.weight)


def cifar_resnet(depth: int, in_channels: int, num_classes: int, width: int = 16) -> ResNet:
    """Depth 6n+2 (8, 14, 20, 32, ...): three stages of n basic blocks, widths w, 2w, 4w."""
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"CIFAR-style ResNet depth must be 6n+2 and at least 8, got {depth}")
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n] * 3, [width, 2 * width, 4 * width], conv3x3(in_channels, width),
                  nn.Identity(), num_classes)


IMAGENET_LAYOUTS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
                    50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3]),
                    152: (Bottleneck, [3, 8, 36, 3])}


def imagenet_resnet(depth: int, in_channels: int = 3, num_classes: int = 1000, width: int = 64) -> ResNet:
    block, blocks = IMAGENET_LAYOUTS[depth]
    conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
    return ResNet(block, blocks, [width, 2 * width, 4 * width, 8 * width], conv1,
                  nn.MaxPool2d(3, stride=2, padding=1), num_classes)
