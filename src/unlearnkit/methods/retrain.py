"""Retrain from scratch on the retain set: the gold standard of exact unlearning."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..engine import SCHEDULES, Phase
from ..models.utils import reinitialize
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


@register
@dataclass(kw_only=True, frozen=True)
class Retrain(Method):
    """Train a freshly initialised model on D_r with the original recipe.

    Defaults are the CIFAR-10 ResNet-18 recipe of the unlearning papers (182 epochs, SGD lr 0.1,
    momentum 0.9, weight decay 5e-4); ``bench`` passes the recipe the original was trained with. The
    fresh model comes from ``request.model_factory`` when given, else from re-initialising every module
    of a copy with its ``reset_parameters``.
    """

    name = "retrain"
    needs_retain = True
    budgeted = False
    probed = False
    tasks = ("classification", "regression")

    epochs: int = hp(182, low=1)
    lr: float = hp(0.1, low=0, low_open=True)
    optimizer: str = hp("sgd", choices=("sgd", "adam", "adamw"))
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    schedule: str = hp("step", choices=SCHEDULES)
    batch_size: int = hp(128, low=1)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        fresh = request.model_factory() if request.model_factory is not None else reinitialize(model, self.seed)
        ctx.fit(self, fresh, Phase("retain", self.batches(request.retain), request.task_loss), request)
        return Outcome(fresh)
