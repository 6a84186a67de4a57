"""IdkDPO: direct preference optimisation preferring "I don't know" over the forget answer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...methods.base import hp, register
from ...methods.context import RunContext
from ..losses import retain_term, sequence_logprob
from .base import LMMethod, LMRequest


def dpo_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float
) -> torch.Tensor:
    """−(2/β)·mean log σ(β·[(log πθ(y_w) − log π_ref(y_w)) − (log πθ(y_l) − log π_ref(y_l))]) over sequences
    (summed token log-likelihoods), as ``compute_dpo_loss`` in open-unlearning's ``src/trainer/utils.py``: the
    2/β factor makes the loss a scaled version of NPO's and keeps its gradient size independent of β."""
    return -(2.0 / beta) * F.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()


@register
@dataclass(kw_only=True, frozen=True)
class IdkDPO(LMMethod):
    """DPO for unlearning (Rafailov et al., NeurIPS 2023, applied as in TOFU, Maini et al. 2024, and NPO,
    Zhang et al. 2024): on each forget question the preferred answer y_w is an "I don't know" reply, the
    rejected y_l the true answer; plus α·retain NLL. Published setting: β = 0.1, α = 1, TOFU recipe."""

    name = "idk-dpo"

    beta: float = hp(0.1, low=0, low_open=True)
    forget_weight: float = hp(1.0, low=0, doc="γ, the weight of the preference term")
    retain_weight: float = hp(1.0, low=0)

    def check(self, request) -> None:
        super().check(request)
        if getattr(request, "forget_alt", None) is None:
            raise ConfigError("idk-dpo needs request.forget_alt (forget prompts with 'I don't know' answers)")

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> None:
        ref = request.frozen_original()

        def loss(m, b):
            rejected, _ = sequence_logprob(m, *b[0:3])
            chosen, _ = sequence_logprob(m, *b[3:6])
            with torch.no_grad():
                ref_rejected, _ = sequence_logprob(ref, *b[0:3])
                ref_chosen, _ = sequence_logprob(ref, *b[3:6])
            out = self.forget_weight * dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.beta)
            if self.retain_weight:
                out = out + self.retain_weight * retain_term("nll", m, None, b[6:])
            return out

        self.fit_loss(ctx, model, request, self.paired_batches(request, request.forget_alt), loss)
