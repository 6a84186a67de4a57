"""IU: influence unlearning with a WoodFisher inverse-Hessian approximation (one Newton-type step)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tensors import Batches, TensorData
from ..probe import choose_knob
from ..target import probe_sets
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext

#: with a target (:mod:`unlearnkit.target`), α is chosen among these multiples of the given α, in this order;
#: the first that reaches the target, else the closest, is kept
ALPHA_FACTORS = (1.0, 0.3, 3.0, 0.1, 10.0)


def flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def summed_gradient(model: nn.Module, data: TensorData, loss, params, device, batch_size: int) -> torch.Tensor:
    """Σ over examples of ∇ loss (batch means re-weighted by batch size), flattened."""
    total = torch.zeros(sum(p.numel() for p in params), device=device)
    for batch in Batches(data, batch_size, shuffle=False):
        batch = tuple(t.to(device) for t in batch)
        total += flat_grad(loss(model, batch), params) * len(batch[0])
    return total


def woodfisher_solve(
    model: nn.Module,
    samples: TensorData,
    loss,
    params,
    device,
    v: torch.Tensor,
    damping: float,
    progress: bool = False,
) -> torch.Tensor:
    """Approximate H⁻¹v for H = damping·I + (1/N)·Σ gᵢgᵢᵀ (the empirical Fisher of N per-sample gradients)
    with one Sherman–Morrison rank-one update per sample (WoodFisher, Singh & Alistarh, NeurIPS 2020).

    Only O(#params) memory: no Hessian or gradient matrix is stored. Each update uses the sample's own
    gradient in place of H_{i-1}⁻¹gᵢ, i.e. cross terms between samples are dropped, which is exact for
    mutually orthogonal gradients."""
    n = len(samples)
    k = v / damping
    for i in tqdm(range(n), desc="iu-woodfisher", disable=not progress, leave=False, unit="sample"):
        batch = tuple(t.to(device) for t in (samples.x[i : i + 1], samples.y[i : i + 1]))
        g = flat_grad(loss(model, batch), params)
        k -= g * (torch.dot(g, k) / (n * damping + torch.dot(g, g)))
    return k


@register
@dataclass(kw_only=True, frozen=True)
class InfluenceUnlearning(Method):
    """Influence unlearning, IU (Koh & Liang 2017; Izzo et al. 2021; the WoodFisher variant of Jia et al.,
    "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

    With summed losses L over D_f (n_f examples) and D_r (n_r), N = n_f + n_r, the influence of D_f on the
    weights is estimated by v = ∇L_forget/N − ∇L_retain·n_f/(N·n_r) and removed with one step
    θ ← θ + α·H⁻¹v, H⁻¹ approximated by WoodFisher from per-sample gradients of a random ``samples``
    (1 000) retain examples. Memory stays O(#params) (ResNet-18 safe). Published: α = 10 (CIFAR-10).
    With a target (``unlearn(..., stop="target")``, the default) α is chosen by the probes of
    :func:`unlearnkit.probe.choose_knob` among ``ALPHA_FACTORS`` × the given α (H⁻¹v is computed once); the
    trace is in ``result.report["probe"]`` and ``result.hparams["alpha"]`` is the α used (the outcome's ``hparams``;
    the method object keeps the given α).
    """

    name = "iu"
    needs_retain = True
    tasks = ("classification", "regression")
    reference_epochs = 0

    alpha: float = hp(10.0, low=0, low_open=True, doc="step size α of θ + α·H⁻¹v")
    samples: int = hp(1000, low=1, doc="retain examples whose per-sample gradients build the Fisher")
    damping: float = hp(1.0, low=0, low_open=True, doc="λ in H = λI + empirical Fisher")
    batch_size: int = hp(256, low=1, doc="batch size of the summed gradients")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        model.to(request.device).eval()
        params = [p for p in model.parameters() if p.requires_grad]
        dev, loss = request.device, request.task_loss
        n_f, n_r = len(request.forget), len(request.retain)
        n = n_f + n_r
        g_f = summed_gradient(model, request.forget, loss, params, dev, self.batch_size)
        g_r = summed_gradient(model, request.retain, loss, params, dev, self.batch_size)
        v = g_f / n - g_r * (n_f / (n * max(1, n_r)))
        rng = np.random.default_rng(self.seed)
        pick = np.sort(rng.choice(n_r, size=min(self.samples, n_r), replace=False))
        step = woodfisher_solve(
            model, request.retain.subset(pick), loss, params, dev, v, self.damping, progress=request.progress
        )
        model.zero_grad(set_to_none=True)

        @torch.no_grad()
        def apply(m: nn.Module, alpha: float) -> None:
            offset = 0
            for p in (q for q in m.parameters() if q.requires_grad):
                p.add_(alpha * step[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

        if request.target is None:
            apply(model, self.alpha)
            return Outcome(model)
        probes = probe_sets(request.forget, request.retain, self.seed)
        grid = [self.alpha * f for f in ALPHA_FACTORS]
        search = choose_knob(model, request.target, *probes, dev, "alpha", grid, apply)
        chosen = search["chosen"]  # None: every α collapsed the model, which is left unchanged
        return Outcome(model, report={"knob_search": search}, hparams={"alpha": chosen} if chosen is not None else {})
