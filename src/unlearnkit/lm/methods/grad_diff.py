"""Gradient difference: ascend on forget, descend on retain (NLL or KL to the original)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...methods.base import hp, register
from ...methods.context import RunContext
from ..losses import nll, retain_term
from .base import LMMethod, LMRequest


@register
@dataclass(kw_only=True, frozen=True)
class GradDiff(LMMethod):
    """Gradient difference (Liu et al., "Continual Learning and Private Unlearning", CoLLAs 2022; TOFU baseline,
    Maini et al. 2024): loss = −γ·NLL(forget) + α·R(retain) with R the retain NLL (``retain_loss="nll"``) or the
    KL from the frozen original's next-token distribution (``"kl"``, TOFU's KL-minimisation variant).
    Follows open-unlearning's ``src/trainer/unlearn/grad_diff.py`` (``configs/trainer/GradDiff.yaml``): AdamW,
    lr 1e-5, batch 32, 5 epochs, γ = α = 1; the KL term is ``kl_to_reference`` (averaged over every position)."""

    name = "grad-diff"

    forget_weight: float = hp(1.0, low=0)
    retain_weight: float = hp(1.0, low=0)
    retain_loss: str = hp("nll", choices=("nll", "kl"))

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> None:
        ref = request.frozen_original() if self.retain_loss == "kl" else None

        def loss(m, b):
            retain = retain_term(self.retain_loss, m, ref, b[3:])
            return -self.forget_weight * nll(m, b[:3]) + self.retain_weight * retain

        self.fit_loss(ctx, model, request, self.paired_batches(request), loss)
