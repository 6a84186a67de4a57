"""SalUn for text-to-image models: the RL generation loss restricted to salient weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...engine import Hook
from ...methods.base import UnlearnRequest, hp, register
from ...methods.context import Outcome, RunContext
from ...methods.masking import MaskHook, Masks, accumulated_gradients, top_fraction_masks
from ..groups import freeze_all_but, group_parameters
from ..schedule import noised
from ..training import StepBatches
from .common import DiffusionMethod
from .rl import fit_relabelled


def guided_forget_loss(model: nn.Module, batch, guidance: float) -> torch.Tensor:
    """−MSE(ε, (1 + w)·ε_θ(x_t, c) − w·ε_θ(x_t, ∅)): the saliency loss of ``generate_mask.py`` (the
    classifier-free-guided prediction, with w = ``c_guidance``)."""
    x0, tokens = batch[0], batch[1]
    x_t, t, noise = noised(model, x0)
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([tokens, torch.zeros_like(tokens)]))
    cond, null = both.chunk(2)
    return -F.mse_loss((1 + guidance) * cond - guidance * null, noise)


def generation_saliency(
    model: nn.Module, request: UnlearnRequest, ratio: float, batch_size: int, seed: int, guidance: float = 7.5
) -> Masks:
    """|Σ over forget batches of ∇_UNet guided forget loss| at the original weights; one global threshold keeps
    the top ``ratio`` (OPTML-Group/Unlearn-Saliency ``SD/train-scripts/generate_mask.py``). Only UNet tensors
    get a mask (the reference sums ``model.model.diffusion_model`` gradients). Timesteps and noise come from
    ``seed`` (same seed, same mask)."""
    params = group_parameters(model, "unet")
    flags = [(p, p.requires_grad) for p in model.parameters()]
    freeze_all_but(model, params)
    n_batches = max(1, -(-len(request.forget) // batch_size))
    batches = StepBatches(request.forget, batch_size, n_batches, seed=seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            grads = accumulated_gradients(
                model, batches, lambda m, b: guided_forget_loss(m, b, guidance), request.device
            )
    finally:
        for p, f in flags:
            p.requires_grad_(f)
    return top_fraction_masks({n: g.abs() for n, g in grads.items()}, ratio)


@register
@dataclass(kw_only=True, frozen=True)
class DiffusionSalUn(DiffusionMethod):
    """SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in Both
    Image Classification and Generation", ICLR 2024) for generation: mask = top 50 % of |Σ ∇ guided forget
    loss| (``generate_mask.py``, w = 7.5); update = ∇ RL loss ⊙ mask (``random_label.py --mask_path``), UNet
    only. Weights outside the mask stay bit-identical. Published: mask ratio 0.5, α = 0.5, lr 1e-5. Composition:
    RL's run (:func:`~unlearnkit.diffusion.methods.rl.fit_relabelled`) with the saliency mask as its hook."""

    name = "salun"

    alpha: float = hp(0.5, low=0, doc="weight of the retain diffusion loss")
    relabel: str = hp("next", choices=("next", "random"), doc="pseudo concept: next on the axis, or random")
    grad_clip: float | None = hp(
        None, low=0, low_open=True, doc="global gradient-norm clip (None: off, as in the reference)"
    )
    mask_ratio: float = hp(0.5, low=0, high=1, low_open=True)
    mask_guidance: float = hp(7.5, low=0, doc="c_guidance w of the saliency loss (generate_mask.py)")
    mask_batch_size: int = hp(8, low=1, doc="batch size for accumulating the saliency gradient")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        fit_relabelled(self, ctx, model, request, after_clip=lambda: self.mask_hooks(model, request))
        return Outcome(model)

    def mask_hooks(self, model: nn.Module, request: UnlearnRequest) -> list[Hook]:
        """The saliency mask of the original weights, as a :class:`~unlearnkit.methods.masking.MaskHook`."""
        model.to(request.device)
        masks = generation_saliency(
            model, request, self.mask_ratio, self.mask_batch_size, self.seed, guidance=self.mask_guidance
        )
        return [MaskHook(model, masks)]
