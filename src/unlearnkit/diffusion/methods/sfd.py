"""SFD: Score Forgetting Distillation — distil the teacher into a one-step generator whose score for the erased
concept is the teacher's score for a safe concept."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ...data.tensors import TensorData
from ...engine import Hook, Phase, StepContext
from ...errors import ConfigError
from ...methods.base import UnlearnRequest, hp, register
from ...methods.context import Outcome, RunContext
from ..groups import group_parameters
from ..one_step import OneStepGenerator
from ..schedule import guided_eps
from .concept_correction import AnchoredMethod


class SFDLoss:
    """One SFD step on a batch of prompts (no images): ``n`` retained prompts c_r plus ``n`` prompts of the erased
    concept c_f.

    1. Fake-score step (``sid_sg_loss_conditional``): with G frozen, x_0 = G(z, c); the fake score network f is
       trained with the ε-prediction loss Σ_pixels (ε − f(x_t, t, c))², batch mean, t ~ U[t_min, t_max), weighted
       ``sg_remain_coef`` / ``sg_forget_coef`` for the two halves; gradients clipped by value; its own Adam step.
    2. Generator loss (``sid_g_loss_conditional``, returned to the engine): x_0 = G(z, c), x_t noised at
       t ~ U[t_min, t_max), x̂_real from the teacher's score under the *target* prompt and x̂_fake from f under c;
       ω = mean|x̂_real − x_0| (no gradient); per image Σ (x̂_real − x̂_fake)·((x̂_real − x_0) − α(x̂_real − x̂_fake)) / ω,
       batch mean, weighted ``g_remain_coef`` / ``g_forget_coef``. The target prompt is c itself for retained
       concepts and the safe concept c_s for c_f (:meth:`teacher_score`): the forgetting term.
    """

    def __init__(self, method: SFD, request: UnlearnRequest, teacher: nn.Module, fake: nn.Module, safe: int) -> None:
        self.m, self.request, self.teacher, self.fake, self.safe = method, request, teacher, fake, safe
        self.fake_params = group_parameters(fake, "unet")
        for p in fake.parameters():
            p.requires_grad_(False)
        self.fake_opt = torch.optim.Adam(self.fake_params, lr=method.fake_lr, betas=(method.beta1, 0.999), eps=1e-8)
        forget = request.forget.y
        self.forget_tokens = forget
        self.gen = torch.Generator().manual_seed(method.seed + 11)
        self.fake_losses: list[float] = []

    # -- the forgetting term ----------------------------------------------------------------------------------
    def target_tokens(self, tokens: torch.Tensor, forget: torch.Tensor) -> torch.Tensor:
        """The prompts whose teacher score is the target: c_f rows (``forget`` mask) get the safe concept c_s,
        every other row keeps its own prompt."""
        safe = self.request.with_label(tokens.cpu(), self.safe).to(tokens.device)
        return torch.where(forget.to(tokens.device)[:, None], safe, tokens)

    def teacher_score(
        self, x_t: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor, forget: torch.Tensor
    ) -> torch.Tensor:
        """ε of the frozen teacher at (x_t, t) under :meth:`target_tokens` (classifier-free guided with
        ``teacher_guidance``; w = 1 is the plain conditional score of the reference)."""
        target = self.teacher.encode(self.target_tokens(tokens, forget))
        w = self.m.teacher_guidance
        uncond = self.teacher.encode(self.teacher.null_tokens(len(tokens), tokens.shape[1])) if w != 1.0 else None
        return guided_eps(self.teacher, x_t, t, target, uncond, w)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _noise(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen).to(device)

    def _timesteps(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randint(self.m.t_min, self.m.t_max, (n,), generator=self.gen).to(device)

    def _prompts(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        retain = batch[0]
        n = len(retain)
        idx = torch.randint(0, len(self.forget_tokens), (n,), generator=self.gen)
        forget = self.forget_tokens[idx].to(retain.device)
        tokens = torch.cat([retain, forget])
        mask = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]).to(retain.device)
        return tokens, mask

    def _weighted(self, per_image: torch.Tensor, mask: torch.Tensor, remain: float, forget: float) -> torch.Tensor:
        return remain * per_image[~mask].mean() + forget * per_image[mask].mean()

    # -- the two losses on given inputs -----------------------------------------------------------------------
    def _noisy(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ab = self.teacher.alphas_cumprod[t].view(-1, 1, 1, 1)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return a * x0 + b * eps, a, b

    def fake_loss(
        self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, tokens: torch.Tensor, forget: torch.Tensor
    ) -> torch.Tensor:
        """``sid_sg_loss_conditional``: Σ_pixels (ε − f(x_t, t, c))², batch mean per half, weighted."""
        x_t, _, _ = self._noisy(x0, t, eps)
        per_image = (eps - self.fake(x_t, t, tokens)).square().sum(dim=(1, 2, 3))
        return self._weighted(per_image, forget, self.m.sg_remain_coef, self.m.sg_forget_coef)

    def sid_loss(
        self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, tokens: torch.Tensor, forget: torch.Tensor
    ) -> torch.Tensor:
        """``sid_g_loss_conditional``: per image Σ (x̂_real − x̂_fake)·((x̂_real − x_0) − α(x̂_real − x̂_fake)) / ω with
        x̂_real from :meth:`teacher_score` (the forgetting term) and ω = mean|x̂_real − x_0|; weighted halves."""
        x_t, a, b = self._noisy(x0, t, eps)
        real = (x_t - b * self.teacher_score(x_t, t, tokens, forget)) / a
        fake = (x_t - b * self.fake(x_t, t, tokens)) / a
        with torch.no_grad():
            omega = (real - x0).abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-5)
        alpha = self.m.alpha
        per_image = ((real - fake) * ((real - x0) - alpha * (real - fake)) / omega).sum(dim=(1, 2, 3))
        return self._weighted(per_image, forget, self.m.g_remain_coef, self.m.g_forget_coef)

    # -- the two updates --------------------------------------------------------------------------------------
    def fake_step(self, gen: OneStepGenerator, tokens: torch.Tensor, mask: torch.Tensor) -> float:
        dev = tokens.device
        shape = (len(tokens), *gen.sample_shape)
        with torch.no_grad():
            x0 = gen.generate(self._noise(shape, dev), gen.encode(tokens))
        for p in self.fake_params:
            p.requires_grad_(True)
        self.fake.train()
        loss = self.fake_loss(x0, self._timesteps(len(tokens), dev), self._noise(shape, dev), tokens, mask)
        self.fake_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.fake_params, self.m.grad_clip_value)
        self.fake_opt.step()
        for p in self.fake_params:
            p.requires_grad_(False)
        self.fake.eval()
        return float(loss.detach())

    def generator_loss(self, gen: OneStepGenerator, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dev = tokens.device
        shape = (len(tokens), *gen.sample_shape)
        x0 = gen.generate(self._noise(shape, dev), gen.encode(tokens))
        return self.sid_loss(x0, self._timesteps(len(tokens), dev), self._noise(shape, dev), tokens, mask)

    def __call__(self, gen: nn.Module, batch) -> torch.Tensor:
        tokens, mask = self._prompts(batch)
        self.fake_losses.append(self.fake_step(gen, tokens, mask))
        return self.generator_loss(gen, tokens, mask)


class ParameterEMA(Hook):
    """The reference's ``FixedEMAHelper``: after every generator step ``avg ← decay · avg + (1 − decay) · θ``
    (``param.lerp(shadow, mu)``) for each trained parameter, the average starting from the weights the generator
    starts from (``register(g_model)``); :meth:`copy_to` writes the average into the parameters."""

    def __init__(self, params: list[nn.Parameter], decay: float) -> None:
        if not 0 <= decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {decay}; 0.9999 is the reference's ema_rate")
        self.params, self.decay = params, decay
        self.average = [p.detach().clone() for p in params]

    def after_step(self, ctx: StepContext) -> None:
        with torch.no_grad():
            for avg, p in zip(self.average, self.params):
                avg.mul_(self.decay).add_(p.detach().to(avg.device), alpha=1 - self.decay)

    def copy_to(self) -> None:
        with torch.no_grad():
            for avg, p in zip(self.average, self.params):
                p.copy_(avg.to(p.device))


class ValueClipHook(Hook):
    """Clip every gradient element of the trained parameters to [−c, c] (``clip_grad_value_`` of the
    reference, for the generator)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def after_backward(self, ctx: StepContext) -> None:
        torch.nn.utils.clip_grad_value_(ctx.params, self.value)


@register
@dataclass(kw_only=True, frozen=True)
class SFD(AnchoredMethod):
    """Score Forgetting Distillation (Chen et al., "Score Forgetting Distillation: a swift, data-free method for
    machine unlearning in diffusion models", ICLR 2025), following tqch/score-forgetting-distillation
    ``DDPM/runners/diffusion.py`` (``train_sfd``), ``DDPM/functions/losses.py`` (``sid_sg_loss_conditional``,
    ``sid_g_loss_conditional``) and ``DDPM/configs/cifar10_sfd.yml``; the loss is score identity distillation's
    (Zhou et al., ICML 2024; mingyuanzhou/SiD ``training/sid_loss.py``, ``SID_EDMLoss.generator_loss``, written
    there in x̂_0 space with the same α-weighted terms and the ω = mean|x̂_real − x_0| normaliser).

    Teacher: the frozen original. Generator G(z, c): a copy of the original read at ``t_init``
    (:class:`~unlearnkit.diffusion.one_step.OneStepGenerator`); fake score network: another copy trained on G's
    samples. Each step draws ``batch_size`` retained prompts and ``batch_size`` prompts of the erased concept —
    prompts only, no training image is read — and runs :class:`SFDLoss`: one fake-score Adam step, then one
    generator step through the shared engine. For c_f the teacher's target score is its score under the safe
    concept c_s (``anchor``; −1 = the next concept on the axis, the reference's forget 0 → override 1; "plain" for
    styles). The result is the one-step generator; it samples in one network evaluation.

    Published (CIFAR-10): α 1.2, t_init 440, t ∈ [38, 712), forget coefficients 0.01, remain 1, Adam lr 1e-5
    (β1 = 0) for both networks, gradients clipped by value at 1, batch 128, 50 000 steps. Deviations, each a
    named hyper-parameter: ``teacher_guidance`` (w of a classifier-free guided teacher score ε(∅) + w(ε(c) − ε(∅));
    the reference config uses none, w = 1; the miniature's evaluation samples the teacher with w = 2, so the
    generator is distilled from that guided score, as SiD-LSG, mingyuanzhou/SiD-LSG, guides its teacher); the
    generator's optimiser is the engine's (``optimizer``; Adam with β1 = 0.9 instead of 0). The UNet of both
    networks is trained; the text encoder stays frozen (the reference trains its class embedding).

    The generator's moving average is the reference's (``model.ema_rate`` 0.9999 of ``cifar10_sfd.yml``,
    ``FixedEMAHelper``, updated after every generator step): with ``distill.init_from_ema`` the reference starts
    teacher, fake score and generator from the original's EMA weights and the average from the generator; here
    the original as given is that starting point (a diffusers folder holds one set of weights). The result is
    the average (``ema_decay``; 0 hands back the last iterate). At 0.9999 the average moves ~1 % of the way in
    100 steps: short runs need a lower ``ema_decay`` to show any erasure."""

    name = "sfd"

    alpha: float = hp(1.2, low=0, doc="α of the SiD generator loss")
    t_init: int = hp(440, low=0, doc="the generator's fixed timestep")
    t_min: int = hp(38, low=0, doc="smallest timestep of the distillation losses")
    t_max: int = hp(712, low=1, doc="largest timestep (exclusive) of the distillation losses")
    g_remain_coef: float = hp(1.0, low=0)
    g_forget_coef: float = hp(0.01, low=0, doc="weight of the forgetting term in the generator loss")
    sg_remain_coef: float = hp(1.0, low=0)
    sg_forget_coef: float = hp(0.01, low=0, doc="weight of the erased concept in the fake-score loss")
    fake_lr: float = hp(1e-5, low=0, low_open=True, doc="Adam lr of the fake score network")
    beta1: float = hp(0.0, low=0, high=0.999, doc="Adam β1 of the fake score network")
    grad_clip_value: float = hp(1.0, low=0, low_open=True)
    teacher_guidance: float = hp(1.0, low=0, doc="classifier-free guidance w of the teacher score (1 = none)")
    steps: int = hp(50000, low=1)
    batch_size: int = hp(128, low=1, doc="prompts per half (retained / erased) of a step")
    lr: float = hp(1e-5, low=0, low_open=True)
    ema_decay: float = hp(0.9999, low=0, high=0.999999, doc="the generator's moving average (0: the last iterate)")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        if not self.t_min < self.t_max <= model.num_timesteps:
            raise ConfigError(
                f"need t_min < t_max <= {model.num_timesteps} (the model's timesteps), got t_min={self.t_min}, "
                f"t_max={self.t_max}"
            )
        teacher = request.frozen_original()
        fake = copy.deepcopy(teacher).to(request.device)
        loss = SFDLoss(self, request, teacher, fake, self.anchor_label(request))
        gen = OneStepGenerator(model, self.t_init)
        params = self.trainable(model, "unet")
        prompts = TensorData(request.retain.y, request.retain.y)  # prompts only: the images are never read
        phase = Phase("sfd", self.stream(prompts), loss)
        ema = ParameterEMA(params, self.ema_decay)
        self.fit_steps(ctx, gen, phase, request, params=params, hooks=[ValueClipHook(self.grad_clip_value), ema])
        ema.copy_to()
        return Outcome(gen, report={"fake_losses": [float(v) for v in loss.fake_losses]})
