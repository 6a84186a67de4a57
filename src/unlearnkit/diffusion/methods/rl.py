"""RL for text-to-image models: SalUn's generation loss without the weight mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...engine import Hook, Phase
from ...methods.base import UnlearnRequest, hp, register
from ..schedule import diffusion_loss, noised
from .common import ClipHook, DiffusionMethod, on_device


class RelabelLoss:
    """MSE(ε_θ(x_t, c_f), sg[ε_θ(x_t, c_other)]) + α · retain diffusion loss, both per-element means.

    c_other is the forget prompt with the concept word replaced by a random other concept of the same axis.
    """

    def __init__(self, request, retain, alpha: float) -> None:
        self.request, self.retain, self.alpha = request, retain, alpha

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        x0, tokens = batch[0], batch[1]
        x_t, t, _ = noised(model, x0)
        other = self.request.relabel(tokens.cpu()).to(tokens.device)
        with torch.no_grad():
            target = model(x_t, t, other)
        forget = F.mse_loss(model(x_t, t, tokens), target)
        return forget + self.alpha * diffusion_loss(model, on_device(self.retain.next(), x0))


@register
@dataclass(kw_only=True)
class DiffusionRL(DiffusionMethod):
    """Random labelling for generation (Fan et al., "SalUn", ICLR 2024, Sec. 4): map the erased concept's
    prompts to the predictions for a random other concept, keep the diffusion loss on the retain set.
    Published SD setting: α = 0.5, lr 1e-5, gradient norm clipped to 1."""

    name = "rl"

    alpha: float = hp(0.5, low=0, doc="weight of the retain diffusion loss")
    grad_clip: float = hp(1.0, low=0, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest) -> nn.Module:
        loss = RelabelLoss(request, self.retain_cycle(request), self.alpha)
        hooks = [ClipHook(self.grad_clip), *self.hooks(model, request)]
        self.fit_steps(model, Phase("forget", self.stream(request.forget), loss), request, hooks=hooks, grad_clip=None)
        return model

    def hooks(self, model: nn.Module, request: UnlearnRequest) -> list[Hook]:
        """Hooks applied after clipping (none for RL; SalUn adds its weight mask)."""
        return []
