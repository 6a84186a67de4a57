"""AdvUnlearn: robust concept erasure by adversarial training of the text encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...engine import Phase
from ...methods.base import UnlearnRequest, hp, register
from ..attacks import ContinuousPrefix, attack_vocabulary, optimise_prefix, prefixed_context
from ..concepts import TEMPLATE
from ..schedule import diffusion_loss
from .common import DiffusionMethod, on_device
from .esd import ESDLoss


class AdvUnlearnLoss:
    """One outer step: (inner) fit a continuous adversarial prefix that regenerates the concept under the
    current model; (outer) ESD loss with the adversarial prompt (prefix + the forget prompt's template words)
    against the frozen original's target for the plain prompt, + γ · retain diffusion loss."""

    def __init__(self, method: AdvUnlearn, request: UnlearnRequest, frozen: nn.Module) -> None:
        self.m, self.request = method, request
        self.esd = ESDLoss(frozen, method.eta, method.ddim_steps, method.start_guidance, method.seed)
        self.retain = method.retain_cycle(request)
        self.allowed = attack_vocabulary(request.data, request.concept)
        self.gen = torch.Generator().manual_seed(method.seed)
        self.step = 0
        self.prefix: ContinuousPrefix | None = None

    def attack(self, model: nn.Module, batch) -> ContinuousPrefix:
        emb = model.text_encoder.token_embedding.weight.detach()
        pick = self.allowed[torch.randint(0, len(self.allowed), (self.m.k,), generator=self.gen)]
        prefix = ContinuousPrefix(emb[pick.to(emb.device)])
        core = batch[1][:, : len(TEMPLATE)]
        optimise_prefix(
            model, prefix, batch[0], core, steps=self.m.attack_steps, lr=self.m.attack_lr, device=emb.device
        )
        return prefix

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        if self.prefix is None or self.step % self.m.attack_every == 0:
            self.prefix = self.attack(model, batch)
        self.step += 1
        tokens = batch[1]
        x_t, t = self.esd.sample(model, tokens)
        adv = self.prefix.vectors.detach()
        pred = model(x_t, t, context=prefixed_context(model, adv, tokens[:, : len(TEMPLATE)]))
        loss = F.mse_loss(pred, self.esd.target(x_t, t, tokens))
        return loss + self.m.retain_weight * diffusion_loss(model, on_device(self.retain.next(), x_t))


@register
@dataclass(kw_only=True)
class AdvUnlearn(DiffusionMethod):
    """AdvUnlearn (Zhang et al., "Defensive Unlearning with Adversarial Training for Robust Concept Erasure in
    Diffusion Models", NeurIPS 2024): bi-level. Inner: a continuous ``k``-token prefix embedding, 30 Adam steps
    at lr 1e-3, minimising the current model's diffusion loss on the concept's images (it regenerates the
    concept); outer: the ESD loss on the adversarial prompt plus γ = 0.3 × the retain diffusion loss, training
    the **text encoder** only. Published: lr 1e-5, 1000 outer iterations, batch 1."""

    name = "advunlearn"

    k: int = hp(3, low=1, doc="adversarial prefix tokens")
    attack_steps: int = hp(30, low=1)
    attack_lr: float = hp(1e-3, low=0, low_open=True)
    attack_every: int = hp(1, low=1, doc="refresh the adversarial prefix every this many outer steps")
    retain_weight: float = hp(0.3, low=0, doc="γ, weight of the utility-retaining regulariser")
    eta: float = hp(1.0, low=0)
    start_guidance: float = hp(3.0, low=0)
    ddim_steps: int = hp(50, low=1)
    steps: int = hp(1000, low=1)
    batch_size: int = hp(1, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest) -> nn.Module:
        loss = AdvUnlearnLoss(self, request, request.frozen_original())
        params = list(model.text_encoder.parameters())
        self.fit_steps(model, Phase("advunlearn", self.stream(request.forget), loss), request, params=params)
        return model
