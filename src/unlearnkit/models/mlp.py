"""A multi-layer perceptron for flat or image inputs (images are flattened)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


class MLP(nn.Module):
    """``Flatten → (Linear → ReLU) × len(hidden) → Linear``; exposes ``features`` and ``classifier``."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
