"""SCRUB: teacher–student unlearning with alternating max- and min-steps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..engine import Batch, Phase
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext
from .distill import distill_kl


class TeacherKL:
    """Loss ``sign · KL(teacher ‖ student)`` at temperature ``T`` (+ ``ce_weight`` · task loss when > 0)."""

    def __init__(self, teacher: nn.Module, temperature: float, *, kl_weight: float = 1.0, ce_weight: float = 0.0):
        self.teacher = teacher
        self.temperature = temperature
        self.kl_weight = kl_weight
        self.ce_weight = ce_weight

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch[0], batch[1]
        out = model(x)
        with torch.no_grad():
            t_out = self.teacher(x)
        loss = self.kl_weight * distill_kl(out, t_out, self.temperature)
        if self.ce_weight:
            loss = loss + self.ce_weight * nn.functional.cross_entropy(out, y)
        return loss


@register
@dataclass(kw_only=True, frozen=True)
class Scrub(Method):
    """SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

    The student starts from the original, which is also the teacher. Each epoch alternates a *max-step*
    (only during the first ``msteps`` epochs) that moves the student away from the teacher on D_f
    (minimise −KL), and a *min-step* on D_r minimising ``gamma``·CE + ``alpha``·KL. KL at temperature
    ``kd_temperature``. Published: SGD lr 5e-4 (momentum 0.9, wd 5e-4), 3 epochs, 2 max-steps, T = 4,
    γ = 0.99, α = 0.001, forget batch 32, retain batch 128.
    """

    name = "scrub"
    needs_retain = True
    reference_epochs = 3

    epochs: int = hp(3, low=1)
    msteps: int = hp(2, low=0, doc="number of initial epochs with a max-step on the forget set")
    lr: float = hp(5e-4, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    kd_temperature: float = hp(4.0, low=0, low_open=True)
    gamma: float = hp(0.99, low=0, doc="weight of the retain cross-entropy in the min-step")
    alpha: float = hp(0.001, low=0, doc="weight of the retain KL to the teacher in the min-step")
    forget_batch_size: int = hp(32, low=1)
    batch_size: int = hp(128, low=1, doc="retain batch size")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        teacher = request.frozen_original()
        msteps = self.msteps
        phases = [
            Phase(
                "max",
                self.batches(request.forget, self.forget_batch_size, salt=1),
                TeacherKL(teacher, self.kd_temperature, kl_weight=-1.0),
                active=lambda epoch: epoch < msteps,
            ),
            Phase(
                "min",
                self.batches(request.retain),
                TeacherKL(teacher, self.kd_temperature, kl_weight=self.alpha, ce_weight=self.gamma),
            ),
        ]
        ctx.fit(self, model, phases, request)
        return Outcome(model)
