"""Weight masks shared by mask-based methods (SalUn, pruning): saliency, thresholds and the engine hook
that keeps masked-out weights exactly where they were."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..engine import Hook, StepContext

Masks = dict[str, torch.Tensor]


def accumulated_gradients(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, ...]],
    loss: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    device: torch.device,
    *,
    train_mode: bool = False,
) -> dict[str, torch.Tensor]:
    """Sum over ``batches`` of the gradient of ``loss`` for every trainable parameter (model left unchanged)."""
    model.train(train_mode)
    grads = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    for batch in batches:
        batch = tuple(t.to(device) for t in batch)
        model.zero_grad(set_to_none=True)
        loss(model, batch).backward()
        for n, p in model.named_parameters():
            if p.grad is not None and n in grads:
                grads[n] += p.grad
    model.zero_grad(set_to_none=True)
    return grads


def top_fraction_masks(scores: dict[str, torch.Tensor], ratio: float) -> Masks:
    """Boolean masks keeping the ``ratio`` fraction of entries with the largest scores, over all tensors
    at once (one global threshold)."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = int(round(ratio * flat.numel()))
    if k <= 0:
        return {n: torch.zeros_like(s, dtype=torch.bool) for n, s in scores.items()}
    if k >= flat.numel():
        return {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    # the k-th largest value; ties at the threshold are broken by order so exactly k entries are kept
    order = torch.argsort(flat, descending=True, stable=True)
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[order[:k]] = True
    masks, start = {}, 0
    for n, s in scores.items():
        masks[n] = keep[start : start + s.numel()].view_as(s)
        start += s.numel()
    return masks


class MaskHook(Hook):
    """Zero gradients outside ``masks`` and restore masked-out weights to their values at the start, so
    that weight decay and momentum cannot move them: frozen entries stay bit-identical."""

    def __init__(self, model: nn.Module, masks: Masks) -> None:
        self.pairs: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = []
        for n, p in model.named_parameters():
            if n in masks:
                m = masks[n].to(p.device)
                self.pairs.append((p, m, p.detach().clone()))

    def after_backward(self, ctx: StepContext) -> None:
        for p, m, _ in self.pairs:
            if p.grad is not None:
                p.grad.mul_(m)

    @torch.no_grad()
    def after_step(self, ctx: StepContext) -> None:
        for p, m, frozen in self.pairs:
            p.copy_(torch.where(m, p, frozen))
