"""SimNPO: reference-free NPO on the length-normalised likelihood."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...methods.base import hp, register
from ...methods.context import RunContext
from ..losses import retain_term, sequence_logprob
from .base import LMMethod, LMRequest


def simnpo_loss(logp: torch.Tensor, n_tokens: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(β·(NLL(y|x)/|y| − δ)): the margin δ sits inside β, as in ``SimNPO.compute_loss`` of
    open-unlearning's ``src/trainer/unlearn/simnpo.py`` (−log πθ/|y| is the average token NLL, so minimising the
    loss raises the forget NLL until it passes δ)."""
    avg_nll = -logp / n_tokens.clamp(min=1)
    return -(2.0 / beta) * F.logsigmoid(beta * (avg_nll - delta)).mean()


@register
@dataclass(kw_only=True, frozen=True)
class SimNPO(LMMethod):
    """SimNPO (Fan et al., "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
    Unlearning", 2024): NPO without a reference model, with length normalisation and a margin δ:
    loss = γ·SimNPO + α·retain NLL. Follows open-unlearning's ``src/trainer/unlearn/simnpo.py`` and
    ``configs/trainer/SimNPO.yaml`` (the TOFU setting of the authors' code): β = 4.5, δ = 0, γ = 0.125, α = 1,
    AdamW, lr 1e-5, batch 32."""

    name = "simnpo"

    beta: float = hp(4.5, low=0, low_open=True)
    delta: float = hp(0.0)
    forget_weight: float = hp(0.125, low=0, doc="γ, the weight of the SimNPO term (npo_coeff)")
    retain_weight: float = hp(1.0, low=0)

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> None:
        def loss(m, b):
            logp, n = sequence_logprob(m, *b[:3])
            out = self.forget_weight * simnpo_loss(logp, n, self.beta, self.delta)
            if self.retain_weight:
                out = out + self.retain_weight * retain_term("nll", m, None, b[3:])
            return out

        self.fit_loss(ctx, model, request, self.paired_batches(request), loss)
