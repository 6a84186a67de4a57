"""Loss functions ``f(model, batch) -> scalar`` used as engine phases, one per task, plus combinators."""

from __future__ import annotations

import torch
from torch import nn

from .engine import Batch, LossFn
from .errors import ConfigError


def cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of ``model(x)`` against integer labels ``y``."""
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def mse(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean squared error of ``model(x)`` (reshaped to the targets) against float targets ``y``."""
    out = model(batch[0])
    y = batch[1]
    return nn.functional.mse_loss(out.reshape(y.shape), y.to(out.dtype))


TASK_LOSSES: dict[str, LossFn] = {"classification": cross_entropy, "regression": mse}


def task_loss(task: str) -> LossFn:
    """The training loss of ``task``."""
    if task not in TASK_LOSSES:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASK_LOSSES)}")
    return TASK_LOSSES[task]


def negated(loss: LossFn) -> LossFn:
    """``-loss``: gradient *ascent* on the wrapped loss."""

    def neg(model: nn.Module, batch: Batch) -> torch.Tensor:
        return -loss(model, batch)

    return neg
