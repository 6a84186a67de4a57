"""GA for language models: gradient ascent on the forget answers."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...methods.base import register
from ...methods.context import RunContext
from ..losses import nll
from .base import LMMethod, LMRequest


@register
@dataclass(kw_only=True, frozen=True)
class LMGradientAscent(LMMethod):
    """Gradient ascent (Jang et al., "Knowledge Unlearning for Mitigating Privacy Risks in Language Models",
    ACL 2023; the TOFU baseline, Maini et al. 2024): minimise −NLL of the forget answers.
    Published TOFU setting: AdamW, lr 1e-5, batch 32, 5 epochs."""

    name = "ga"
    accumulate_by = "tokens"  # the token-mean NLL: accumulation gives the full-batch gradient

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> None:
        self.fit_loss(ctx, model, request, self.forget_batches(request), lambda m, b: -nll(m, b))
