"""NPO: negative preference optimisation against the frozen original."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...methods.base import hp, register
from ...methods.context import RunContext
from ..losses import retain_term, sequence_logprob
from .base import LMMethod, LMRequest


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(−β·(log πθ(y|x) − log π_ref(y|x))) over sequences: ``compute_dpo_loss`` with no
    preferred answer in open-unlearning's ``src/trainer/utils.py``."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


@register
@dataclass(kw_only=True, frozen=True)
class NPO(LMMethod):
    """NPO (Zhang et al., "Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning",
    COLM 2024): loss −(2/β)·log σ(−β·(log πθ − log π_ref)) on forget answers (sequence log-likelihoods), plus
    α·retain NLL (the NPO+RT variant, α = 1; set ``retain_weight=0`` for plain NPO), times γ on the forget term.
    Follows open-unlearning's ``src/trainer/unlearn/npo.py`` and ``configs/trainer/NPO.yaml``: β = 0.1, γ = α = 1,
    TOFU recipe (AdamW, lr 1e-5, batch 32, 5 epochs)."""

    name = "npo"

    beta: float = hp(0.1, low=0, low_open=True)
    forget_weight: float = hp(1.0, low=0, doc="γ, the weight of the NPO term")
    retain_weight: float = hp(1.0, low=0)
    retain_loss: str = hp("nll", choices=("nll", "kl"))

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> None:
        ref = request.frozen_original()

        def loss(m, b):
            logp, _ = sequence_logprob(m, *b[:3])
            with torch.no_grad():
                ref_logp, _ = sequence_logprob(ref, *b[:3])
            out = self.forget_weight * npo_loss(logp, ref_logp, self.beta)
            if self.retain_weight:
                out = out + self.retain_weight * retain_term(self.retain_loss, m, ref, b[3:])
            return out

        self.fit_loss(ctx, model, request, self.paired_batches(request), loss)
