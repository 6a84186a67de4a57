"""ResNet-18, CIFAR variant (He et al. 2016): 3×3 stride-1 stem and no max-pool, as used by the
unlearning papers (SalUn, l1-sparse, SCRUB) on CIFAR-10."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ModelError


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with a CIFAR stem; ``width`` scales every stage (64 in the papers)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ModelError(f"resnet18 needs image inputs shaped (C, H, W), got {tuple(input_shape)}")
        c = input_shape[0]
        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        cin = width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
