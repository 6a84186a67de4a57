"""A small convolutional network with BatchNorm, sized for 8×8 to 32×32 images on a CPU."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ModelError


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CNN(nn.Module):
    """Three conv-BN-ReLU blocks (``width``, 2·``width``, 4·``width`` channels) with 2×2 max-pooling after the
    first two when the image is large enough, adaptive average pooling to 2×2, then a hidden linear layer.
    Exposes ``features`` and ``classifier``."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 16, hidden: int = 128) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ModelError(f"cnn needs image inputs shaped (C, H, W), got {tuple(input_shape)}; use 'mlp'")
        c, h, _ = input_shape
        pool = h >= 16  # keep 8x8 inputs at full resolution
        layers: list[nn.Module] = _block(c, width)
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += _block(width, 2 * width)
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += _block(2 * width, 4 * width)
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16 * width, hidden), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
