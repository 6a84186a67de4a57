"""GA for text-to-image models: gradient ascent on the diffusion loss of the erased concept."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...engine import Phase
from ...methods.base import UnlearnRequest, hp, register
from ..schedule import diffusion_loss
from .common import DiffusionMethod


@register
@dataclass(kw_only=True)
class DiffusionGA(DiffusionMethod):
    """Gradient ascent (Thudi et al., EuroS&P 2022), the generation baseline of SalUn (Fan et al., ICLR
    2024): maximise the conditional DDPM loss on images and prompts of the erased concept."""

    name = "ga"

    lr: float = hp(1e-5, low=0, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest) -> nn.Module:
        def loss(m: nn.Module, batch):
            return -diffusion_loss(m, batch)

        self.fit_steps(model, Phase("forget", self.stream(request.forget), loss), request)
        return model
