"""Concept-domain correction: DoCo (adversarial concept-domain correction with per-tensor gradient surgery,
``concept-correction``) and its simpler MSE-to-anchor variant (``concept-correction-mse``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...data.tensors import TensorData
from ...engine import Hook, Phase, StepContext
from ...errors import ConfigError
from ...methods.base import UnlearnRequest, hp, register
from ...methods.context import Outcome, RunContext
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


@dataclass(kw_only=True, frozen=True)
class AnchoredMethod(DiffusionMethod):
    """A method that maps the erased concept onto an anchor concept of the same axis."""

    anchor: int = hp(-1, low=-1, doc="label index of the anchor concept on the erased axis; -1 = automatic")

    def anchor_label(self, request: UnlearnRequest) -> int:
        spec, data = request.concept, request.data
        names = data.names(spec.axis)
        if self.anchor >= 0:
            if self.anchor >= len(names) or self.anchor == spec.index:
                raise ConfigError(
                    f"anchor must be another {spec.axis} index in [0, {len(names) - 1}], not {spec.index}"
                )
            return self.anchor
        if spec.axis == "style" and "plain" in names and names.index("plain") != spec.index:
            return names.index("plain")
        return (spec.index + 1) % len(names)


@register
@dataclass(kw_only=True, frozen=True)
class ConceptCorrectionMSE(AnchoredMethod):
    """A simplified variant of DoCo (Wu et al., AAAI 2025) kept under its own name: the erased concept's
    outputs are pulled onto the frozen original's prediction for an anchor concept by a direct MSE (no
    discriminator, no warm-up), and the unlearning gradient is projected off the retain-loss gradient once
    (PCGrad) when they conflict, then λ × the retain gradient is added. The faithful method is
    :class:`ConceptCorrection`. ``anchor=-1`` picks the next concept on the axis ("plain" for styles)."""

    name = "concept-correction-mse"

    retain_weight: float = hp(1.0, low=0, doc="λ: weight of the preserving (retain) gradient")
    params: str = hp("xattn", choices=("xattn", "full"))
    lr: float = hp(1e-5, low=0, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        loss = AnchorAlignLoss(request, request.frozen_original(), self.anchor_label(request))
        params = self.trainable(model, "xattn" if self.params == "xattn" else "unet")
        hook = PreservingGradientHook(model, self.retain_cycle(request), self.retain_weight)
        self.fit_steps(
            ctx, model, Phase("correct", self.stream(request.forget), loss), request, hooks=[hook], params=params
        )
        return Outcome(model)


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator on (latent or pixel) images: stride-2 4×4 convolutions with LeakyReLU(0.2) and
    batch norm after the first, then a 1-channel convolution giving one logit per patch (DoCo's ``patchgan``
    discriminator, with as many down-sampling blocks as the input size allows, at most four)."""

    def __init__(self, channels: int, size: int, width: int = 32) -> None:
        super().__init__()
        blocks = max(1, min(4, int(size).bit_length() - 2))
        layers: list[nn.Module] = []
        cin = channels
        for i in range(blocks):
            cout = width * 2**i
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def predicted_x0(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x̂_0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t (a DDPM scheduler step's ``pred_original_sample``)."""
    ab = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


class DoCoLoss:
    """One DoCo step on a batch of anchor images with anchor prompts c_a; c_e is c_a with the erased concept's
    word. Both halves of the batch are noised at random timesteps; on the first half the frozen original
    predicts x̂_0 for c_a (label 0 for the discriminator D) and the model being edited predicts x̂_0 for c_e
    (label 1); D takes one Adam step on BCE. After ``warmup`` steps the returned loss is the generator loss
    BCE(D(x̂_0 of c_e), 0); before it, zero (the reference updates only D). The retention loss
    MSE(ε_θ(x_t, c_a), ε) on the second half is kept in ``self.retention`` for the gradient surgery."""

    def __init__(self, method: ConceptCorrection, request: UnlearnRequest, frozen: nn.Module, anchor: int) -> None:
        self.m, self.request, self.frozen, self.anchor = method, request, frozen, anchor
        shape = request.original.sample_shape
        dev = request.device
        self.disc = PatchDiscriminator(shape[0], shape[-1], method.disc_width).to(dev)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=method.disc_lr)
        self.bce = nn.BCEWithLogitsLoss()
        self.step = 0
        self.retention: torch.Tensor | None = None
        self.d_losses: list[float] = []

    def _timesteps(self, model: nn.Module, n: int, device: torch.device) -> torch.Tensor:
        if self.m.timestep >= 0:
            return torch.full((n,), min(self.m.timestep, model.num_timesteps - 1), device=device, dtype=torch.long)
        return torch.randint(0, model.num_timesteps, (n,), device=device)

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        x0, anchor_tokens = batch[0], batch[1]
        n = max(1, len(x0) // 2)
        erase_tokens = self.request.with_label(anchor_tokens.cpu(), self.request.concept.index).to(x0.device)
        noise = torch.randn_like(x0)
        t = self._timesteps(model, len(x0), x0.device)
        ab = model.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        xe, te = x_t[:n], t[:n]
        with torch.no_grad():
            x0_anchor = predicted_x0(model, xe, te, self.frozen(xe, te, anchor_tokens[:n]))
        x0_erase = predicted_x0(model, xe, te, model(xe, te, erase_tokens[:n]))
        # discriminator step: anchor (frozen original) → 0, erased concept (model being edited) → 1
        self.disc.train()
        logit_a, logit_e = self.disc(x0_anchor), self.disc(x0_erase.detach())
        loss_d = self.bce(logit_a, torch.zeros_like(logit_a)) + self.bce(logit_e, torch.ones_like(logit_e))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.d_losses.append(loss_d.item())
        self.step += 1
        if self.step <= self.m.warmup:
            self.retention = None
            return (x0_erase * 0.0).sum()
        prior = slice(n, None) if len(x0) > 1 else slice(0, None)
        self.retention = F.mse_loss(model(x_t[prior], t[prior], anchor_tokens[prior]), noise[prior])
        for p in self.disc.parameters():
            p.requires_grad_(False)
        try:
            logit_g = self.disc(x0_erase)
        finally:
            for p in self.disc.parameters():
                p.requires_grad_(True)
        return self.bce(logit_g, torch.zeros_like(logit_g))


class GradientSurgeryHook(Hook):
    """DoCo's concept-preserving gradient, per tensor (``adjust_gradient``): with g_u the (clipped) generator
    gradient and g_r the (clipped) retention gradient of the same tensor, û = g_u/‖g_u‖, r̂ = g_r/‖g_r‖; when
    ⟨û, r̂⟩ < 0, g_u ← g_u − λ·⟨û, r̂⟩·r̂. The update then uses g_u alone, clipped to ``max_norm``."""

    def __init__(self, loss: DoCoLoss, weight: float, max_norm: float) -> None:
        self.loss, self.weight, self.max_norm = loss, weight, max_norm
        self.adjusted = 0

    def after_backward(self, ctx: StepContext) -> None:
        retention = self.loss.retention
        if retention is None:
            return
        params = [p for p in ctx.params if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        g_r = torch.autograd.grad(retention, params, allow_unused=True)
        g_r = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_r)]
        total = torch.sqrt(sum((g * g).sum() for g in g_r))
        scale = min(1.0, self.max_norm / (float(total) + 1e-6))
        for p, g in zip(params, g_r):
            r_hat = g * scale / ((g * scale).norm() + 1e-8)
            u_hat = p.grad / (p.grad.norm() + 1e-8)
            dot = torch.dot(u_hat.flatten(), r_hat.flatten())
            if dot < 0:
                p.grad.sub_(self.weight * dot * r_hat)
                self.adjusted += 1
        torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        self.loss.retention = None


@register
@dataclass(kw_only=True, frozen=True)
class ConceptCorrection(AnchoredMethod):
    """DoCo — Concept Domain Correction with Concept-Preserving Gradient (Wu et al., "Unlearning Concepts in
    Diffusion Model via Concept Domain Correction and Concept Preserving Gradient", AAAI 2025), following
    ``UnlearningMethods/DoCo/train_doco.py`` and ``src/utils.py::adjust_gradient`` of justinhylee135/CUIG (a
    diffusers port of the authors' code, built on Concept Ablation): a PatchGAN discriminator on the predicted
    clean sample (latents for a VAE pipeline) learns to tell the frozen original's x̂_0 for the anchor prompt
    from the edited model's x̂_0 for the erased prompt on the same noised anchor image; after ``warmup``
    discriminator-only steps the model is trained to fool it, its gradient adjusted per tensor against the
    retention (prior-preservation) gradient (:class:`GradientSurgeryHook`), on ``attn2.to_k``/``attn2.to_v``
    only (``parameter_group cross-attn``). Published (CUIG README): 1000 steps, 500 warm-up, lr 5e-5,
    discriminator lr 5e-4, λ = 1, max grad norm 1. Anchor images here are real images of the anchor concept
    (Concept Ablation generates them with the original model)."""

    name = "concept-correction"

    warmup: int = hp(500, low=0, doc="discriminator-only steps before the model is updated")
    disc_lr: float = hp(5e-4, low=0, low_open=True, doc="discriminator learning rate (dlr)")
    disc_width: int = hp(64, low=1, doc="channels of the first discriminator block")
    surgery_weight: float = hp(1.0, low=0, doc="λ of the gradient adjustment")
    max_grad_norm: float = hp(1.0, low=0, low_open=True)
    timestep: int = hp(-1, low=-1, doc="fixed noising timestep (999 = --use_random_latent); -1 = uniform")
    steps: int = hp(1000, low=1)
    batch_size: int = hp(4, low=1)
    lr: float = hp(5e-5, low=0, low_open=True)
    params: str = hp("xattn-kv", choices=("xattn-kv", "xattn"))

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        anchor = self.anchor_label(request)
        data, spec = request.data, request.concept
        part = data.subset(data.labels(spec.axis) == anchor)
        if len(part) == 0:
            raise ConfigError(f"no images of the anchor {spec.axis} {data.names(spec.axis)[anchor]!r}")
        prompts = data.prompts(part.objects.tolist(), part.styles.tolist())
        anchors = TensorData(request.latents(part.images), prompts)
        loss = DoCoLoss(self, request, request.frozen_original(), anchor)
        params = self.trainable(model, self.params)
        hook = GradientSurgeryHook(loss, self.surgery_weight, self.max_grad_norm)
        phase = Phase("doco", self.stream(anchors), loss)
        self.fit_steps(ctx, model, phase, request, hooks=[hook], params=params, grad_clip=None)
        return Outcome(model)
