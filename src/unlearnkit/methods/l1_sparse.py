"""l1-sparse: fine-tuning with a decaying l1 penalty."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..engine import SCHEDULES, Hook, Phase, StepContext
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


class L1Penalty(Hook):
    """Adds α_t·‖θ‖₁ with α_t = α·(1 − progress), decaying linearly to 0 over the run."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        alpha_t = self.alpha * (1.0 - ctx.progress)
        if alpha_t <= 0:
            return None
        return alpha_t * sum(p.abs().sum() for p in ctx.params)


@register
@dataclass(kw_only=True, frozen=True)
class L1Sparse(Method):
    """l1-sparse unlearning (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023):
    fine-tune on D_r minimising CE + α_t‖θ‖₁ with α_t decaying linearly to 0 (α = 5e-4, lr 0.01, 10 epochs)."""

    name = "l1-sparse"
    needs_retain = True
    tasks = ("classification", "regression")
    reference_epochs = 10

    epochs: int = hp(10, low=1)
    lr: float = hp(0.01, low=0, low_open=True)
    alpha: float = hp(5e-4, low=0)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(128, low=1)
    schedule: str = hp("constant", choices=SCHEDULES, doc="learning-rate schedule over the run (published: constant)")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        phase = Phase("retain", self.batches(request.retain), request.task_loss)
        ctx.fit(self, model, phase, request, hooks=[L1Penalty(self.alpha)])
        return Outcome(model)
