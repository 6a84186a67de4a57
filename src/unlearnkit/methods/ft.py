"""FT: fine-tune the original on the retain set (catastrophic forgetting of D_f)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..engine import SCHEDULES, Phase
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


@register
@dataclass(kw_only=True, frozen=True)
class FineTune(Method):
    """Fine-tuning baseline (Warnecke et al., NDSS 2023; as configured in SalUn, Fan et al., ICLR 2024):
    SGD on D_r only, lr 0.01 for 10 epochs of a 182-epoch original."""

    name = "ft"
    needs_retain = True
    tasks = ("classification", "regression")
    reference_epochs = 10

    epochs: int = hp(10, low=1)
    lr: float = hp(0.01, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(128, low=1)
    schedule: str = hp("constant", choices=SCHEDULES, doc="learning-rate schedule over the run (published: constant)")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        ctx.fit(self, model, Phase("retain", self.batches(request.retain), request.task_loss), request)
        return Outcome(model)
