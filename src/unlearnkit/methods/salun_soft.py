"""SalUn-soft: SalUn with a soft threshold — non-salient weights are pulled back toward θ₀, not frozen."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..engine import SCHEDULES, Hook, StepContext
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext
from .masking import Masks
from .rl import random_label_phases
from .salun import saliency_masks


class ProximalPull(Hook):
    """After each step, apply the proximal operator of ``strength`` · ‖(1 − m) ⊙ (θ − θ₀)‖₁: every
    non-salient weight's distance to its original value θ₀ shrinks by ``lr_t · strength`` (soft
    threshold), reaching θ₀ exactly when the distance is smaller. Salient weights move freely."""

    def __init__(self, model: nn.Module, masks: Masks, strength: float) -> None:
        self.strength = strength
        self.items: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = []
        for n, p in model.named_parameters():
            if n in masks:
                self.items.append((p, ~masks[n].to(p.device), p.detach().clone()))

    @torch.no_grad()
    def after_step(self, ctx: StepContext) -> None:
        tau = ctx.optimizer.param_groups[0]["lr"] * self.strength
        for p, free, theta0 in self.items:
            d = p - theta0
            shrunk = theta0 + d.sign() * (d.abs() - tau).clamp_min(0.0)
            p.copy_(torch.where(free, shrunk, p))


@register
@dataclass(kw_only=True, frozen=True)
class SalUnSoft(Method):
    """SalUn, soft-threshold variant (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based
    Weight Saliency", ICLR 2024): RL's phases (:func:`~unlearnkit.methods.rl.random_label_phases`) composed with
    a proximal hook. Random-label unlearning over *all* weights, with a proximal step after
    every update that pulls the non-salient weights (outside the top ``mask_ratio`` of |∇(−CE)| on D_f)
    toward their original values θ₀ by ``lr · pull`` (an ℓ1 proximal operator), instead of SalUn's hard
    freeze. SalUn's published setting otherwise: mask ratio 0.5, lr 0.013, 10 epochs; ``pull`` = 1 makes the
    pull as large as a gradient step of size 1; the paper fixes no strength, 0.01 is our default."""

    name = "salun-soft"
    needs_retain = True
    reference_epochs = 10

    epochs: int = hp(10, low=1)
    lr: float = hp(0.013, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(128, low=1)
    schedule: str = hp("constant", choices=SCHEDULES, doc="learning-rate schedule over the run (published: constant)")
    mask_ratio: float = hp(0.5, low=0, high=1, low_open=True)
    pull: float = hp(0.01, low=0, doc="strength of the ℓ1 pull of non-salient weights toward θ₀")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        phases = random_label_phases(self, request)
        model.to(request.device)
        masks = saliency_masks(model, request, self.mask_ratio, self.batch_size, self.seed)
        ctx.fit(self, model, phases, request, hooks=[ProximalPull(model, masks, self.pull)])
        return Outcome(model)
