"""SalUn: saliency-based unlearning."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..engine import Hook
from ..losses import negated
from .base import UnlearnRequest, hp, register
from .masking import MaskHook, Masks, accumulated_gradients, top_fraction_masks
from .rl import RandomLabel


def saliency_masks(model: nn.Module, request: UnlearnRequest, ratio: float, batch_size: int, seed: int) -> Masks:
    """SalUn's weight saliency: |Σ over D_f of ∇(−loss)| at the original weights, model in eval mode;
    one global threshold keeps the top ``ratio`` of weights."""
    from ..data.tensors import Batches

    grads = accumulated_gradients(
        model, Batches(request.forget, batch_size, shuffle=False, seed=seed), negated(request.task_loss), request.device
    )
    return top_fraction_masks({n: g.abs() for n, g in grads.items()}, ratio)


@register
@dataclass(kw_only=True)
class SalUn(RandomLabel):
    """SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency",
    ICLR 2024): random-label unlearning restricted to salient weights. The saliency mask keeps the top
    ``mask_ratio`` of |∇(−CE)| over D_f; gradients outside it are zeroed and those weights stay exactly at
    their original values. Published CIFAR-10 setting: mask ratio 0.5, lr 0.013, 10 epochs."""

    name = "salun"
    reference_epochs = 10

    lr: float = hp(0.013, low=0, low_open=True)
    mask_ratio: float = hp(0.5, low=0, high=1, low_open=True)

    def hooks(self, model: nn.Module, request: UnlearnRequest) -> list[Hook]:
        model.to(request.device)
        masks = saliency_masks(model, request, self.mask_ratio, self.batch_size, self.seed)
        return [MaskHook(model, masks)]
