"""UNDIAL: self-distillation towards the original's logits with the forget token pushed down."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...methods.base import hp, register
from ..losses import retain_term, shifted_logits
from .base import LMMethod, LMRequest


def undial_targets(ref_logits: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Teacher distribution: softmax of the reference logits with the true next token's logit reduced by β."""
    adjusted = ref_logits.float().clone()
    adjusted.scatter_add_(-1, target.clamp(min=0).unsqueeze(-1), torch.full_like(adjusted[..., :1], -beta))
    return torch.softmax(adjusted, -1)


def undial_loss(logits: torch.Tensor, ref_logits: torch.Tensor, target: torch.Tensor, valid, beta: float):
    """Cross-entropy from the adjusted teacher distribution to the student, over labelled positions."""
    teacher = undial_targets(ref_logits, target, beta)
    ce = -(teacher * torch.log_softmax(logits.float(), -1)).sum(-1)
    return (ce * valid).sum() / valid.sum().clamp(min=1)


@register
@dataclass(kw_only=True)
class UNDIAL(LMMethod):
    """UNDIAL (Dong et al., "UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning in Large
    Language Models", NAACL 2025): distil the frozen original into the model on the forget data, with the logit
    of each forget token lowered by β in the teacher. The paper uses no retain term (α = 0), LoRA, lr 1e-4 and
    β in {3, 10, 30}; β = 10 here."""

    name = "undial"

    lr: float = hp(1e-4, low=0, low_open=True)
    beta: float = hp(10.0, low=0, low_open=True)
    retain_weight: float = hp(0.0, low=0)

    def unlearn(self, model: nn.Module, request: LMRequest) -> None:
        ref = request.frozen_original()

        def loss(m, b):
            ids, mask, labels = b[:3]
            logits, target, valid = shifted_logits(m, ids, mask, labels)
            with torch.no_grad():
                ref_logits = ref(input_ids=ids, attention_mask=mask).logits[:, :-1]
            out = undial_loss(logits, ref_logits, target, valid, self.beta)
            if self.retain_weight:
                out = out + self.retain_weight * retain_term("nll", m, None, b[3:])
            return out

        self.fit_loss(model, request, self.paired_batches(request), loss)
