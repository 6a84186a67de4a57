"""GA: gradient ascent on the forget set."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..engine import SCHEDULES, Phase
from ..losses import negated
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


@register
@dataclass(kw_only=True, frozen=True)
class GradientAscent(Method):
    """Gradient ascent (Thudi et al., EuroS&P 2022): minimise −loss on D_f.
    Published CIFAR-10 setting: SGD lr 1e-4, 5 epochs."""

    name = "ga"
    tasks = ("classification", "regression")
    reference_epochs = 5

    epochs: int = hp(5, low=1)
    lr: float = hp(1e-4, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(128, low=1)
    schedule: str = hp("constant", choices=SCHEDULES, doc="learning-rate schedule over the run (published: constant)")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        ctx.fit(self, model, Phase("forget", self.batches(request.forget), negated(request.task_loss)), request)
        return Outcome(model)
