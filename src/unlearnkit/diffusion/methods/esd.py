"""ESD: erase a concept by steering its noise prediction away from the frozen original's."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...engine import Phase
from ...methods.base import UnlearnRequest, hp, register
from ...methods.context import Outcome, RunContext
from ..schedule import sample_xt
from .common import DiffusionMethod


class ESDLoss:
    """MSE(ε_θ(x_t, c), ε*(x_t, ∅) − η·(ε*(x_t, c) − ε*(x_t, ∅))) with ε* the frozen original and x_t sampled
    from the model being edited (``start_guidance``, ``ddim_steps``), stopped at a random DDIM step."""

    def __init__(self, frozen: nn.Module, eta: float, ddim_steps: int, start_guidance: float, seed: int) -> None:
        self.frozen, self.eta, self.ddim_steps, self.start_guidance = frozen, eta, ddim_steps, start_guidance
        self.gen = torch.Generator().manual_seed(seed)

    def target(self, x_t: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            both = self.frozen(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([torch.zeros_like(tokens), tokens]))
            e_null, e_cond = both.chunk(2)
            return e_null - self.eta * (e_cond - e_null)

    def sample(self, model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = model.training
        model.eval()
        x_t, t = sample_xt(model, tokens, steps=self.ddim_steps, guidance=self.start_guidance, generator=self.gen)
        model.train(was_training)
        return x_t, t

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        tokens = batch[1]
        x_t, t = self.sample(model, tokens)
        return F.mse_loss(model(x_t, t, tokens), self.target(x_t, t, tokens))


@register
@dataclass(kw_only=True, frozen=True)
class ESD(DiffusionMethod):
    """ESD (Gandikota et al., "Erasing Concepts from Diffusion Models", ICCV 2023), following
    rohitgandikota/erasing ``train-scripts/train-esd.py``: x_t is sampled with the model being edited (DDIM,
    ``start_guidance``) up to a random step, and ε_θ(x_t, c) is regressed onto the frozen original's
    ε*(x_t, ∅) − η·(ε*(x_t, c) − ε*(x_t, ∅)). ``params`` picks the tensors by module name
    (:mod:`unlearnkit.diffusion.groups`): ``"xattn"`` — every ``attn2`` tensor (ESD-x, ``train_method xattn``);
    ``"xattn-kv"`` — ``attn2.to_k``/``to_v`` only (``esd-x-strict`` of ``esd_sd.py``); ``"noxattn"`` —
    everything outside ``attn2``, ``time_embed*`` and the output head (ESD-u, ``train_method noxattn``).
    The text encoder stays frozen. Published: η = 1, start guidance 3, 50 DDIM steps, batch 1, lr 1e-5,
    1000 iterations."""

    name = "esd"
    needs_images = False

    params: str = hp("xattn", choices=("xattn", "xattn-kv", "noxattn"))
    eta: float = hp(1.0, low=0, doc="negative guidance")
    start_guidance: float = hp(3.0, low=0, doc="guidance when sampling x_t")
    ddim_steps: int = hp(50, low=1)
    steps: int = hp(1000, low=1)
    batch_size: int = hp(1, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        loss = ESDLoss(request.frozen_original(), self.eta, self.ddim_steps, self.start_guidance, self.seed)
        params = self.trainable(model, self.params)
        self.fit_steps(ctx, model, Phase("esd", self.stream(request.forget), loss), request, params=params)
        return Outcome(model)


@register
@dataclass(kw_only=True, frozen=True)
class ESDx(ESD):
    """ESD-x: :class:`ESD` on every cross-attention (``attn2``) tensor of the UNet (``train-esd.py``
    ``train_method xattn``)."""

    name = "esd-x"
    params: str = hp("xattn", choices=("xattn",))


@register
@dataclass(kw_only=True, frozen=True)
class ESDxStrict(ESD):
    """ESD-x-strict: :class:`ESD` on ``attn2.to_k`` and ``attn2.to_v`` only (rohitgandikota/erasing
    ``esd_sd.py``, ``train_method esd-x-strict``)."""

    name = "esd-x-strict"
    params: str = hp("xattn-kv", choices=("xattn-kv",))


@register
@dataclass(kw_only=True, frozen=True)
class ESDu(ESD):
    """ESD-u: :class:`ESD` on the UNet outside cross-attention, the timestep embedding and the output head
    (``train-esd.py`` ``train_method noxattn``: skips ``attn2``, ``time_embed``, ``out.``)."""

    name = "esd-u"
    params: str = hp("noxattn", choices=("noxattn",))
