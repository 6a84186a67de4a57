"""SSD: Selective Synaptic Dampening, a retrain-free method."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.tensors import Batches, TensorData
from .base import Method, UnlearnRequest, hp, register


def fisher_diagonal(
    model: nn.Module, data: TensorData, loss, batch_size: int, device: torch.device, seed: int = 0
) -> dict:
    """Diagonal of the empirical Fisher information: the mean over batches of the squared gradient of
    ``loss`` for every parameter (model in eval mode, left unchanged). Batches are drawn in a seeded
    shuffled order, so that a batch of the full training set mixes forget and retain examples."""
    model.eval()
    imp = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    batches = Batches(data, batch_size, shuffle=True, seed=seed)
    for batch in batches:
        batch = tuple(t.to(device) for t in batch)
        model.zero_grad(set_to_none=True)
        loss(model, batch).backward()
        for n, p in model.named_parameters():
            if p.grad is not None and n in imp:
                imp[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    return {n: v / max(1, len(batches)) for n, v in imp.items()}


@torch.no_grad()
def dampen(model: nn.Module, forget_imp: dict, global_imp: dict, alpha: float, lam: float) -> float:
    """Multiply each parameter whose forget importance exceeds ``alpha`` × its global importance by
    ``min(lam · I_D / I_Df, 1)``; return the fraction of parameters dampened."""
    changed = total = 0
    for n, p in model.named_parameters():
        if n not in forget_imp:
            continue
        i_f, i_d = forget_imp[n], global_imp[n]
        sel = i_f > alpha * i_d
        factor = torch.clamp(lam * i_d / i_f.clamp_min(torch.finfo(i_f.dtype).tiny), max=1.0)
        p.copy_(torch.where(sel, p * factor, p))
        changed += int(sel.sum())
        total += p.numel()
    return changed / max(1, total)


@register
@dataclass(kw_only=True)
class SelectiveSynapticDampening(Method):
    """SSD (Foster et al., "Fast Machine Unlearning Without Retraining Through Selective Synaptic
    Dampening", AAAI 2024).

    Diagonal Fisher importances are computed on D_f (I_Df) and on the whole training set D = D_r ∪ D_f
    (I_D). Parameters with I_Df > α·I_D are specialised to the forget set and are multiplied by
    min(λ·I_D/I_Df, 1). No training epochs. Published: α = 10 (selection weighting), λ = 1 (dampening).
    """

    name = "ssd"
    tasks = ("classification", "regression")
    reference_epochs = 0

    alpha: float = hp(10.0, low=0, low_open=True, doc="selection weighting α")
    dampening: float = hp(1.0, low=0, low_open=True, doc="dampening constant λ")
    batch_size: int = hp(64, low=1, doc="batch size of the importance estimates")

    def run(self, model: nn.Module, request: UnlearnRequest) -> nn.Module:
        model.to(request.device)
        full = TensorData.concat([request.retain, request.forget])
        forget_imp = fisher_diagonal(
            model, request.forget, request.task_loss, self.batch_size, request.device, self.seed
        )
        global_imp = fisher_diagonal(model, full, request.task_loss, self.batch_size, request.device, self.seed)
        self.dampened_fraction = dampen(model, forget_imp, global_imp, self.alpha, self.dampening)
        return model
