"""RL for text-to-image models: SalUn's generation loss without the weight mask."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...engine import Hook, Phase
from ...methods.base import UnlearnRequest, hp, register
from ...methods.context import Outcome, RunContext
from ..schedule import diffusion_loss, noised
from .common import ClipHook, DiffusionMethod, on_device


class RelabelLoss:
    """MSE(ε_θ(x_t, c_f), sg[ε_θ(x_t, c_pseudo)]) + α · retain DDPM loss, both per-element means; x_t is the
    forget image noised once and shared by both predictions (``forget_noisy`` = ``pseudo_noisy``).

    ``relabel="next"``: c_pseudo names the next concept of the axis ((c + 1) mod K, as ``random_label.py``);
    ``"random"``: a random other concept per prompt (the paper's wording)."""

    def __init__(self, request, retain, alpha: float, relabel: str) -> None:
        self.request, self.retain, self.alpha, self.relabel = request, retain, alpha, relabel

    def pseudo(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.relabel == "random":
            return self.request.relabel(tokens.cpu()).to(tokens.device)
        k = len(self.request.data.names(self.request.concept.axis))
        return self.request.with_label(tokens.cpu(), (self.request.concept.index + 1) % k).to(tokens.device)

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        x0, tokens = batch[0], batch[1]
        x_t, t, _ = noised(model, x0)
        with torch.no_grad():
            target = model(x_t, t, self.pseudo(tokens))
        forget = F.mse_loss(model(x_t, t, tokens), target)
        return forget + self.alpha * diffusion_loss(model, on_device(self.retain.next(), x0))


@register
@dataclass(kw_only=True, frozen=True)
class DiffusionRL(DiffusionMethod):
    """Random labelling for generation (Fan et al., "SalUn", ICLR 2024, Sec. 4), following
    OPTML-Group/Unlearn-Saliency ``SD/train-scripts/random_label.py``: map the erased concept's prompts to the
    model's own (stop-gradient) prediction for a pseudo concept on the same noised image, plus α × the DDPM loss
    of a retain batch; Adam on the UNet only (``train_method full``), text encoder frozen, no gradient clipping
    (``grad_clip`` adds one). Published: α = 0.5 (README command), lr 1e-5, batch 8, 5 epochs."""

    name = "rl"

    alpha: float = hp(0.5, low=0, doc="weight of the retain diffusion loss")
    relabel: str = hp("next", choices=("next", "random"), doc="pseudo concept: next on the axis, or random")
    grad_clip: float | None = hp(
        None, low=0, low_open=True, doc="global gradient-norm clip (None: off, as in the reference)"
    )

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        fit_relabelled(self, ctx, model, request)
        return Outcome(model)


def fit_relabelled(
    method: Any,
    ctx: RunContext,
    model: nn.Module,
    request: UnlearnRequest,
    after_clip: Callable[[], list[Hook]] = list,
) -> None:
    """RL's training run for ``method`` (its ``alpha``, ``relabel``, ``grad_clip`` and step recipe): the relabelled
    forget loss on the UNet, clipped when ``grad_clip`` is set, then the hooks ``after_clip()`` builds once the UNet is
    the trained group (SalUn's weight mask)."""
    loss = RelabelLoss(request, method.retain_cycle(request), method.alpha, method.relabel)
    params = method.trainable(model, "unet")
    hooks = ([ClipHook(method.grad_clip)] if method.grad_clip is not None else []) + after_clip()
    phase = Phase("forget", method.stream(request.forget), loss)
    method.fit_steps(ctx, model, phase, request, hooks=hooks, params=params, grad_clip=None)
