"""The collapse guard: after a classification method runs, is the model still a classifier of the retain set?

:func:`unlearnkit.unlearn` calls :func:`check_collapse` after every method (``retrain`` aside): accuracy on a
fixed random slice of D_r (``GUARD_SIZE`` examples, drawn with the method's seed) is compared with the
original's accuracy on the same slice. Below ``threshold`` — by default the original's accuracy minus
``DEFAULT_DROP`` points; settable with ``unlearn(..., collapse_threshold=...)`` — a :class:`CollapseWarning`
names the method and the hyper-parameter to change, and ``bench`` marks the row ``collapsed``.

The slice is drawn from D_r, which the methods also see; a method that collapses a model (retain accuracy
near chance) shows it on any data, and drawing the slice from D_r keeps every method's input unchanged.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.tensors import TensorData
from .errors import ConfigError

GUARD_SIZE = 512
DEFAULT_DROP = 20.0

#: what to change when a method collapses the model (the hyper-parameter that sets how far it moves)
HINTS: dict[str, str] = {
    "ga": "lower `lr` or `epochs` (gradient ascent has no lower bound on the loss)",
    "ssd": "raise `alpha` (fewer parameters are dampened; e.g. alpha=50)",
    "iu": "lower `alpha` (the size of the influence step)",
    "salun": "lower `lr` (or raise `mask_ratio` less aggressively: the masked weights move further)",
    "salun-soft": "lower `lr`",
    "rl": "lower `lr`",
    "scrub": "lower `msteps` or `lr` (fewer max-steps away from the teacher)",
    "bad-teacher": "lower `lr` or `epochs`",
    "laf": "lower `lr` or `epochs`",
    "clean-unlearning": "clean-unlearning is meant to collapse clean accuracy (backdoor exposure), not to forget",
    "gradient-surgery": "lower the inner method's `lr` or `epochs`",
    "prune-then-unlearn": "lower `sparsity`",
}


class CollapseWarning(UserWarning):
    """An unlearned model's retain accuracy fell below the collapse threshold."""


@dataclass
class CollapseCheck:
    """The guard's measurement: accuracies (percent) on the slice, the threshold and the verdict."""

    method: str
    accuracy: float
    original_accuracy: float
    threshold: float
    collapsed: bool
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def guard_slice(retain: TensorData, seed: int = 0, size: int = GUARD_SIZE) -> TensorData:
    """A fixed random slice of ``size`` retain examples (all of D_r when smaller)."""
    n = len(retain)
    if n <= size:
        return retain
    rng = np.random.default_rng(seed)
    return retain.subset(np.sort(rng.choice(n, size, replace=False)))


@torch.no_grad()
def slice_accuracy(model: nn.Module, data: TensorData, device: torch.device, batch_size: int = 512) -> float:
    """Accuracy (percent) of ``model`` on ``data``; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        out = model(data.x[i : i + batch_size].to(device))
        correct += int((out.argmax(dim=1).cpu() == data.y[i : i + batch_size].cpu()).sum())
    model.train(was_training)
    return 100.0 * correct / max(1, len(data))


def check_collapse(
    method: str,
    original: nn.Module,
    unlearned: nn.Module,
    retain: TensorData,
    device: torch.device,
    *,
    threshold: float | None = None,
    seed: int = 0,
    warn: bool = True,
) -> CollapseCheck:
    """Compare retain accuracy of ``unlearned`` and ``original`` on :func:`guard_slice`; warn on a collapse."""
    if threshold is not None and not 0 <= threshold <= 100:
        raise ConfigError(f"collapse_threshold is a retain accuracy in percent, in [0, 100]; got {threshold!r}")
    part = guard_slice(retain, seed)
    orig_acc = slice_accuracy(copy.deepcopy(original).to(device), part, device)
    acc = slice_accuracy(unlearned, part, device)
    limit = orig_acc - DEFAULT_DROP if threshold is None else float(threshold)
    result = CollapseCheck(method, acc, orig_acc, limit, acc < limit, len(part))
    if result.collapsed and warn:
        hint = HINTS.get(method, "lower `lr` or `epochs`")
        warnings.warn(
            f"{method}: the model collapsed — retain accuracy {acc:.1f} % on {len(part)} retain examples "
            f"(original {orig_acc:.1f} %, threshold {limit:.1f} %); {hint}. Set collapse_threshold= to change "
            "the threshold.",
            CollapseWarning,
            stacklevel=3,
        )
    return result
