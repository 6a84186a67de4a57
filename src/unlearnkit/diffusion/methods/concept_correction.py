"""Concept-domain correction with concept-preserving gradients."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...engine import Hook, Phase, StepContext
from ...methods.base import UnlearnRequest, hp, register
from ..model import unet_parameters
from ..schedule import diffusion_loss, noised
from .common import DiffusionMethod, on_device


class AnchorAlignLoss:
    """MSE(ε_θ(x_t, c_erased), sg[ε*(x_t, c_anchor)]): outputs for the erased concept are pulled into the
    output domain of the anchor concept under the frozen original ε*."""

    def __init__(self, request, frozen: nn.Module, anchor: int) -> None:
        self.request, self.frozen, self.anchor = request, frozen, anchor

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        x0, tokens = batch[0], batch[1]
        x_t, t, _ = noised(model, x0)
        anchor = self.request.with_label(tokens.cpu(), self.anchor).to(tokens.device)
        with torch.no_grad():
            target = self.frozen(x_t, t, anchor)
        return F.mse_loss(model(x_t, t, tokens), target)


class PreservingGradientHook(Hook):
    """Concept-preserving gradient: g_u ← g_u − min(0, ⟨g_u, g_r⟩)/‖g_r‖² · g_r, then add λ·g_r, where g_r is the
    gradient of the retain diffusion loss; the unlearning step never increases the retain loss to first order."""

    def __init__(self, model: nn.Module, retain, weight: float) -> None:
        self.model, self.retain, self.weight = model, retain, weight
        self.conflicts = 0

    def after_backward(self, ctx: StepContext) -> None:
        params = [p for p in ctx.params if p.grad is not None]
        if not params:
            return
        batch = on_device(self.retain.next(), params[0])
        g_r = torch.autograd.grad(diffusion_loss(self.model, batch), params, allow_unused=True)
        g_r = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_r)]
        dot = sum((p.grad * g).sum() for p, g in zip(params, g_r))
        norm2 = sum((g * g).sum() for g in g_r)
        coef = dot / norm2.clamp_min(1e-12) if dot < 0 else torch.zeros(())
        self.conflicts += int(dot < 0)
        for p, g in zip(params, g_r):
            p.grad.sub_(coef * g).add_(self.weight * g)


@register
@dataclass(kw_only=True)
class ConceptCorrection(DiffusionMethod):
    """Concept Domain Correction with Concept-Preserving Gradient (after Wu et al., "Unlearning Concepts in
    Diffusion Model via Concept Domain Correction and Concept Preserving Gradient", AAAI 2025). The erased
    concept's outputs are aligned with an anchor concept's (here a direct MSE to the frozen model's anchor
    prediction, in place of the paper's adversarial discriminator), and the unlearning gradient is projected
    off the retain gradient whenever the two conflict. ``anchor=-1`` picks the next concept on the axis
    ("plain" for styles when it is not the erased one)."""

    name = "concept-correction"

    anchor: int = hp(-1, low=-1, doc="label index of the anchor concept on the erased axis; -1 = automatic")
    retain_weight: float = hp(1.0, low=0, doc="λ: weight of the preserving (retain) gradient")
    params: str = hp("xattn", choices=("xattn", "full"))
    lr: float = hp(1e-5, low=0, low_open=True)

    def anchor_label(self, request: UnlearnRequest) -> int:
        spec, data = request.concept, request.data
        names = data.names(spec.axis)
        if self.anchor >= 0:
            if self.anchor >= len(names) or self.anchor == spec.index:
                from ...errors import ConfigError

                raise ConfigError(
                    f"anchor must be another {spec.axis} index in [0, {len(names) - 1}], not {spec.index}"
                )
            return self.anchor
        if spec.axis == "style" and "plain" in names and names.index("plain") != spec.index:
            return names.index("plain")
        return (spec.index + 1) % len(names)

    def run(self, model: nn.Module, request: UnlearnRequest) -> nn.Module:
        loss = AnchorAlignLoss(request, request.frozen_original(), self.anchor_label(request))
        params = unet_parameters(model, cross_attention=True) if self.params == "xattn" else list(model.parameters())
        hook = PreservingGradientHook(model, self.retain_cycle(request), self.retain_weight)
        self.fit_steps(model, Phase("correct", self.stream(request.forget), loss), request, hooks=[hook], params=params)
        return model
