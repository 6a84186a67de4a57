"""GA for text-to-image models: gradient ascent on the diffusion loss of the erased concept."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...engine import Phase
from ...methods.base import UnlearnRequest, hp, register
from ...methods.context import Outcome, RunContext
from ..schedule import diffusion_loss
from .common import DiffusionMethod, on_device


@register
@dataclass(kw_only=True, frozen=True)
class DiffusionGA(DiffusionMethod):
    """Gradient ascent (Thudi et al., EuroS&P 2022) as the generation baseline of SalUn (Fan et al., ICLR 2024),
    following OPTML-Group/Unlearn-Saliency ``SD/train-scripts/gradient_ascent.py``: loss = −(conditional DDPM
    loss on the erased concept's images and prompts) + α · (DDPM loss on a retain batch), α = 0.1, trained on
    the UNet only (``train_method full`` = every ``diffusion_model`` parameter; the text encoder stays frozen)."""

    name = "ga"

    alpha: float = hp(0.1, low=0, doc="weight of the retain diffusion loss (gradient_ascent.py --alpha)")
    lr: float = hp(1e-5, low=0, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        retain = self.retain_cycle(request)
        alpha = self.alpha

        def loss(m: nn.Module, batch):
            forget = -diffusion_loss(m, batch)
            if alpha == 0:
                return forget
            return forget + alpha * diffusion_loss(m, on_device(retain.next(), batch[0]))

        params = self.trainable(model, "unet")
        self.fit_steps(ctx, model, Phase("forget", self.stream(request.forget), loss), request, params=params)
        return Outcome(model)
