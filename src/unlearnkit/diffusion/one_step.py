"""A one-step generator G(z, c) made from an ε-prediction diffusion model, as score identity distillation (SiD)
and Score Forgetting Distillation (SFD) build it, and a sampling-speed comparison against the teacher's sampler.

G is the teacher's own network (a copy, then trained) read at one fixed timestep t_init: the input is
x_t = √(1−ᾱ_{t_init})·z, the noisy sample of a zero image, and the output is the network's clean-sample estimate
x̂_0 = (x_t − √(1−ᾱ)·ε(x_t, t_init, c)) / √ᾱ — ``run_generator`` / ``x0_from_noise`` of
tqch/score-forgetting-distillation ``DDPM/runners/diffusion.py`` (``xt = init_b * randn``, ``x0 = xt / init_a −
init_sigma * et``). It samples in one network evaluation, with no classifier-free guidance (the reference samples
its one-step generator with ``cond_scale 0``)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError


class OneStepGenerator(nn.Module):
    """G(z, c) = x̂_0 of ``net`` at ``t_init`` from x_t = √(1−ᾱ)·z. Everything else (``encode``, ``from_latents``,
    ``alphas_cumprod``, ``sample_shape``, ``config`` …) is the wrapped network's, so the evaluation, the grids and
    :func:`unlearnkit.diffusion.schedule.ddim_sample` take it like any text-to-image model; ``ddim_sample`` sees
    ``one_step`` and calls :meth:`sample` (one evaluation, any ``steps``/``guidance`` given are ignored)."""

    one_step = True

    def __init__(self, net: nn.Module, t_init: int) -> None:
        super().__init__()
        if not 0 <= t_init < net.num_timesteps:
            raise ConfigError(f"t_init must be a timestep in [0, {net.num_timesteps - 1}], got {t_init}")
        self.net = net
        self.t_init = int(t_init)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        tokens: torch.Tensor | None = None,
        *,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The wrapped network's ε prediction (what G is built from)."""
        return self.net(x, t, tokens, context=context)

    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.net.alphas_cumprod[self.t_init]
        return ab.sqrt(), (1 - ab).sqrt()

    def generate(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x̂_0 = G(z, c) in the model's sample space (differentiable; no clamping, as in training)."""
        a, b = self._coefficients()
        x_t = b * z
        t = torch.full((z.shape[0],), self.t_init, device=z.device, dtype=torch.long)
        return (x_t - b * self.net(x_t, t, context=context)) / a

    @torch.no_grad()
    def sample(
        self,
        tokens: torch.Tensor | None = None,
        *,
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 512,
    ) -> torch.Tensor:
        """One-step samples for the prompts ``tokens`` (or a ready ``context``); noise is drawn on the CPU from
        ``generator`` exactly as ``ddim_sample`` draws it, and x̂_0 is clamped to [-1, 1] for a pixel model."""
        dev = self.net.alphas_cumprod.device
        if context is None:
            if tokens is None:
                raise ConfigError("pass prompt token ids or a ready text context")
            context = self.net.encode(tokens.to(dev))
        z = torch.randn((context.shape[0], *self.net.sample_shape), generator=generator).to(dev)
        outs = []
        for i in range(0, len(z), batch_size):
            x0 = self.generate(z[i : i + batch_size], context[i : i + batch_size])
            outs.append(x0.clamp(-1, 1) if getattr(self.net, "clip_sample", False) else x0)
        return torch.cat(outs)


def is_one_step(model: nn.Module) -> bool:
    return bool(getattr(model, "one_step", False))


@torch.no_grad()
def sampling_speed(
    generator: OneStepGenerator,
    teacher: nn.Module,
    tokens: torch.Tensor,
    *,
    steps: int = 25,
    guidance: float = 2.0,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Images per second of the one-step generator and of the teacher's DDIM sampler (``steps``, classifier-free
    guidance ``guidance``: the evaluation's default sampler) on the same prompts, measured in one call and
    interleaved (teacher, generator, teacher, …) so that machine load hits both alike; the best of ``repeats``
    timings of each. Returns ``one_step_ips``, ``teacher_ips`` and ``speedup``."""
    from .schedule import ddim_sample

    n = tokens.shape[0]
    best = {"teacher": float("inf"), "one_step": float("inf")}
    for _ in range(max(1, repeats)):
        for name, run in (
            ("teacher", lambda g: ddim_sample(teacher, tokens, steps=steps, guidance=guidance, generator=g)),
            ("one_step", lambda g: generator.sample(tokens, generator=g)),
        ):
            g = torch.Generator().manual_seed(seed)
            start = time.perf_counter()
            run(g)
            best[name] = min(best[name], time.perf_counter() - start)
    one, teach = n / best["one_step"], n / best["teacher"]
    return {"one_step_ips": one, "teacher_ips": teach, "speedup": one / teach, "images": float(n)}


def speed_against(generator: OneStepGenerator, teacher: nn.Module, data: Any, sampling: Any) -> dict[str, float]:
    """:func:`sampling_speed` on one evaluation-sized batch (every object × style prompt, ``per_prompt`` each)
    against the teacher's evaluation sampler (``sampling.steps`` DDIM steps, guidance ``sampling.guidance``)."""
    objs = [o for o in range(len(data.object_names)) for _ in data.style_names]
    stys = [s for _ in data.object_names for s in range(len(data.style_names))]
    tokens = data.prompts(objs, stys).repeat_interleave(sampling.per_prompt, dim=0)
    return sampling_speed(
        generator, teacher, tokens, steps=sampling.steps, guidance=sampling.guidance, seed=sampling.seed
    )
