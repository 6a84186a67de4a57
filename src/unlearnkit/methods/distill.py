"""Knowledge-distillation pieces shared by teacher–student methods (SCRUB, Bad Teacher)."""

from __future__ import annotations

import torch
from torch import nn


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-softened distributions, times T² (Hinton et al. 2015),
    averaged over the batch."""
    t = float(temperature)
    log_p_s = nn.functional.log_softmax(student_logits / t, dim=1)
    p_t = nn.functional.softmax(teacher_logits.detach() / t, dim=1)
    return nn.functional.kl_div(log_p_s, p_t, reduction="batchmean") * t * t


def frozen(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode with every parameter frozen (a teacher); returns it."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
