"""UNDIAL: self-distillation towards the original's logits with the forget token pushed down."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...methods.base import hp, register
from ...methods.context import RunContext
from ..losses import retain_term, shifted_logits
from .base import LMMethod, LMRequest


def undial_targets(
    ref_logits: torch.Tensor, target: torch.Tensor, beta: float, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Teacher distribution: softmax of the reference logits with the true next token's logit reduced by β at the
    labelled positions (``valid``; all positions when None) and left as it is elsewhere."""
    adjusted = ref_logits.float().clone()
    step = torch.full_like(adjusted[..., :1], -beta)
    if valid is not None:
        step = step * valid.unsqueeze(-1).to(step.dtype)
    adjusted.scatter_add_(-1, target.clamp(min=0).unsqueeze(-1), step)
    return torch.softmax(adjusted, -1)


def undial_loss(logits: torch.Tensor, ref_logits: torch.Tensor, target: torch.Tensor, valid, beta: float):
    """Cross-entropy from the adjusted teacher distribution to the student, averaged over *every* position of the
    batch, as ``compute_undial_loss`` in open-unlearning's ``src/trainer/utils.py`` (``CrossEntropyLoss`` with soft
    labels, ``.mean()``). Unlabelled positions (prompt, padding) are distilled from the unadjusted teacher; the
    reference indexes its mask with the label −100 there, which lowers the logit of token ``vocab − 100``."""
    teacher = undial_targets(ref_logits, target, beta, valid)
    ce = -(teacher * torch.log_softmax(logits.float(), -1)).sum(-1)
    return ce.mean()


@register
@dataclass(kw_only=True, frozen=True)
class UNDIAL(LMMethod):
    """UNDIAL (Dong et al., "UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning in Large
    Language Models", NAACL 2025): distil the frozen original into the model on the forget data, with the logit
    of each forget token lowered by β in the teacher: loss = γ·UNDIAL + α·retain NLL. Follows open-unlearning's
    ``src/trainer/unlearn/undial.py`` and ``configs/trainer/UNDIAL.yaml``: no retain term (α = 0), γ = 1, lr 1e-4,
    β = 10 (the paper: LoRA, β in {3, 10, 30})."""

    name = "undial"

    lr: float = hp(1e-4, low=0, low_open=True)
    beta: float = hp(10.0, low=0, low_open=True)
    forget_weight: float = hp(1.0, low=0, doc="γ, the weight of the distillation term")
    retain_weight: float = hp(0.0, low=0)

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> None:
        ref = request.frozen_original()

        def loss(m, b):
            ids, mask, labels = b[:3]
            logits, target, valid = shifted_logits(m, ids, mask, labels)
            with torch.no_grad():
                ref_logits = ref(input_ids=ids, attention_mask=mask).logits[:, :-1]
            out = self.forget_weight * undial_loss(logits, ref_logits, target, valid, self.beta)
            if self.retain_weight:
                out = out + self.retain_weight * retain_term("nll", m, None, b[3:])
            return out

        self.fit_loss(ctx, model, request, self.paired_batches(request), loss)
