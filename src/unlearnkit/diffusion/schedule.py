"""DDPM training loss, classifier-free guidance and the samplers, as functions of a :class:`TextToImage`.

A model that carries a diffusers scheduler (``model.scheduler``, a pipeline loaded with
:func:`unlearnkit.diffusion.hf.load_pipeline`) is sampled with *that* scheduler, its class and config as given
(PNDM, Euler, DPM-Solver, DDIM, DDPM, …), as ``StableDiffusionPipeline`` samples it. Where a method needs
DDIM steps (ESD's x_t, prompt attacks), they run over the ᾱ_t of the same config (``model.alphas_cumprod``), with
the predicted sample clamped only when that config sets ``clip_sample``.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def q_sample(model: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε."""
    ab = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def noised(model: nn.Module, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random timestep and noise per image: returns (x_t, t, ε)."""
    t = torch.randint(0, model.num_timesteps, (x0.shape[0],), device=x0.device)
    noise = torch.randn_like(x0)
    return q_sample(model, x0, t, noise), t, noise


def diffusion_loss(
    model: nn.Module,
    batch: tuple[torch.Tensor, ...],
    *,
    null_prob: float = 0.0,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """The DDPM ε-prediction loss, a per-element mean, on a batch (images, token ids).

    With ``null_prob`` a share of prompts is replaced by the empty prompt (classifier-free guidance training).
    """
    x0, tokens = batch[0], batch[1]
    if null_prob > 0 and context is None:
        drop = torch.rand(tokens.shape[0], device=tokens.device) < null_prob
        tokens = torch.where(drop[:, None], torch.zeros_like(tokens), tokens)
    x_t, t, noise = noised(model, x0)
    return F.mse_loss(model(x_t, t, tokens, context=context), noise)


def guided_eps(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, guidance: float
) -> torch.Tensor:
    """ε̃ = ε(x, ∅) + w·(ε(x, c) − ε(x, ∅)) from text contexts ``cond`` and ``uncond`` in one batched call."""
    if guidance == 1.0:
        return model(x, t, context=cond)
    both = model(torch.cat([x, x]), torch.cat([t, t]), context=torch.cat([uncond, cond]))
    e_u, e_c = both.chunk(2)
    return e_u + guidance * (e_c - e_u)


def ddim_timesteps(model: nn.Module, steps: int) -> torch.Tensor:
    """The ``steps`` DDPM timesteps DDIM visits, from T−1 down to 0."""
    return torch.linspace(model.num_timesteps - 1, 0, steps, device=model.alphas_cumprod.device).round().long()


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    tokens: torch.Tensor | None = None,
    *,
    context: torch.Tensor | None = None,
    steps: int = 25,
    guidance: float = 2.0,
    generator: torch.Generator | None = None,
    stop_at: int | None = None,
    batch_size: int = 512,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0) with classifier-free guidance; samples in the model's sample space (images in
    [-1, 1] for a pixel model, latents for a VAE pipeline: decode with ``model.from_latents``).

    ``stop_at`` returns x_t after that many steps instead of the final image (ESD samples x_t this way).
    A one-step generator (``model.one_step``, :mod:`unlearnkit.diffusion.one_step`) samples in one evaluation;
    a model with a diffusers ``scheduler`` samples the final image with that scheduler (:func:`scheduler_steps`)
    and ``steps`` of it.
    """
    if getattr(model, "one_step", False) and stop_at is None:
        return model.sample(tokens, context=context, generator=generator, batch_size=batch_size)
    scheduler = getattr(model, "scheduler", None) if stop_at is None else None
    dev = model.alphas_cumprod.device
    if context is None:
        context = model.encode(tokens.to(dev))
    n = context.shape[0]
    shape = model.sample_shape
    noise = torch.randn((n, *shape), generator=generator).to(dev)
    outs = []
    for i in range(0, n, batch_size):
        x, cond = noise[i : i + batch_size], context[i : i + batch_size]
        if scheduler is not None:
            outs.append(scheduler_steps(model, scheduler, x, cond, steps, guidance, generator))
        else:
            outs.append(_ddim(model, x, cond, steps, guidance, stop_at))
    return torch.cat(outs)


def scheduler_steps(
    model: nn.Module,
    scheduler: Any,
    x: torch.Tensor,
    cond: torch.Tensor,
    steps: int,
    guidance: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample from noise ``x`` with a copy of the diffusers ``scheduler`` (its state is per run):
    ``set_timesteps(steps)``, x ← x·``init_noise_sigma``, then per timestep the guided ε of
    ``scale_model_input(x, t)`` and ``step(ε, t, x)`` — the loop of diffusers' ``StableDiffusionPipeline``."""
    sched = copy.deepcopy(scheduler)
    sched.set_timesteps(steps, device=x.device)
    uncond = model.encode(model.null_tokens(x.shape[0], cond.shape[1]))
    extra = {"generator": generator} if "generator" in inspect.signature(sched.step).parameters else {}
    x = x * sched.init_noise_sigma
    for t in sched.timesteps:
        eps = guided_eps(model, sched.scale_model_input(x, t), t.expand(x.shape[0]), cond, uncond, guidance)
        x = sched.step(eps, t, x, **extra, return_dict=False)[0]
    return x


def _ddim(
    model: nn.Module, x: torch.Tensor, cond: torch.Tensor, steps: int, guidance: float, stop_at: int | None
) -> torch.Tensor:
    uncond = model.encode(model.null_tokens(x.shape[0], cond.shape[1]))
    ts = ddim_timesteps(model, steps)
    acp = model.alphas_cumprod
    for i, t in enumerate(ts):
        if stop_at is not None and i >= stop_at:
            break
        tt = t.expand(x.shape[0])
        eps = guided_eps(model, x, tt, cond, uncond, guidance)
        ab = acp[t]
        ab_prev = acp[ts[i + 1]] if i + 1 < len(ts) else torch.ones_like(ab)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if model.clip_sample:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x


@torch.no_grad()
def sample_xt(
    model: nn.Module,
    tokens: torch.Tensor,
    *,
    steps: int,
    guidance: float,
    generator: torch.Generator | None = None,
    k: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESD's x_t: run the sampler from noise for ``k`` (default: a random number of) DDIM steps; returns
    (x_t, t)."""
    ts = ddim_timesteps(model, steps)
    if k is None:
        k = int(torch.randint(0, steps, (1,), generator=generator))
    x = ddim_sample(model, tokens, steps=steps, guidance=guidance, generator=generator, stop_at=k)
    return x, ts[k].expand(x.shape[0])
