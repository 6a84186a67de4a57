"""SalUn for text-to-image models: the RL generation loss restricted to salient weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...engine import Hook
from ...methods.base import UnlearnRequest, hp, register
from ...methods.masking import MaskHook, Masks, accumulated_gradients, top_fraction_masks
from ..schedule import diffusion_loss
from ..training import StepBatches
from .rl import DiffusionRL


def generation_saliency(model: nn.Module, request: UnlearnRequest, ratio: float, batch_size: int, seed: int) -> Masks:
    """|Σ over forget images and prompts of ∇ conditional diffusion loss| at the original weights; one global
    threshold keeps the top ``ratio``. Timesteps and noise are drawn from ``seed`` (same seed, same mask)."""
    n_batches = max(1, -(-len(request.forget) // batch_size))
    batches = StepBatches(request.forget, batch_size, n_batches, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        grads = accumulated_gradients(model, batches, diffusion_loss, request.device)
    return top_fraction_masks({n: g.abs() for n, g in grads.items()}, ratio)


@register
@dataclass(kw_only=True)
class DiffusionSalUn(DiffusionRL):
    """SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in Both
    Image Classification and Generation", ICLR 2024) for generation: mask = top 50 % of the saliency of the
    forget diffusion loss; update = clip(∇ RL loss, 1) ⊙ mask. Weights outside the mask stay bit-identical.
    Published SD setting: mask ratio 0.5, α = 0.5, lr 1e-5."""

    name = "salun"

    mask_ratio: float = hp(0.5, low=0, high=1, low_open=True)
    mask_batch_size: int = hp(64, low=1, doc="batch size for accumulating the saliency gradient")

    def hooks(self, model: nn.Module, request: UnlearnRequest) -> list[Hook]:
        model.to(request.device)
        masks = generation_saliency(model, request, self.mask_ratio, self.mask_batch_size, self.seed)
        return [MaskHook(model, masks)]
