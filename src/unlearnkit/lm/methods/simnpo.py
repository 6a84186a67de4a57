"""SimNPO: reference-free NPO on the length-normalised likelihood."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...methods.base import hp, register
from ..losses import retain_term, sequence_logprob
from .base import LMMethod, LMRequest


def simnpo_loss(logp: torch.Tensor, n_tokens: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(−(β/|y|)·log πθ(y|x) − δ); note −log πθ/|y| is the average token NLL, so the
    argument is β·NLL_avg − δ and minimising the loss raises the forget NLL."""
    avg_nll = -logp / n_tokens.clamp(min=1)
    return -(2.0 / beta) * F.logsigmoid(beta * avg_nll - delta).mean()


@register
@dataclass(kw_only=True)
class SimNPO(LMMethod):
    """SimNPO (Fan et al., "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
    Unlearning", 2024): NPO without a reference model, with length normalisation and a margin δ, plus α·retain
    NLL. Published TOFU setting: β = 4.5, δ = 0, α = 1, AdamW, lr 1e-5, batch 32."""

    name = "simnpo"

    beta: float = hp(4.5, low=0, low_open=True)
    delta: float = hp(0.0)
    retain_weight: float = hp(1.0, low=0)

    def unlearn(self, model: nn.Module, request: LMRequest) -> None:
        def loss(m, b):
            logp, n = sequence_logprob(m, *b[:3])
            out = simnpo_loss(logp, n, self.beta, self.delta)
            if self.retain_weight:
                out = out + self.retain_weight * retain_term("nll", m, None, b[3:])
            return out

        self.fit_loss(model, request, self.paired_batches(request), loss)
