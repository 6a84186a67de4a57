"""Gaussian amnesiac: relabel the forget targets with Gaussian noise and fine-tune (regression)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.tensors import TensorData
from ..engine import Phase
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


def gaussian_targets(targets: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` draws from N(mean, sd) of ``targets`` (seeded), shaped like one target each."""
    t = targets.double()
    gen = torch.Generator().manual_seed(seed)
    sd = float(t.std()) if t.numel() > 1 else 0.0
    draws = torch.randn((n, *targets.shape[1:]), generator=gen, dtype=torch.float64) * sd + float(t.mean())
    return draws.to(targets.dtype)


@register
@dataclass(kw_only=True, frozen=True)
class GaussianAmnesiac(Method):
    """Gaussian amnesiac learning for regression (the regression analogue of amnesiac relabelling in
    Tarun et al., "Deep Regression Unlearning", ICML 2023): each forget target is replaced by a draw from
    N(mean, sd) of the training targets (D_r ∪ D_f), and the model is fine-tuned for 1 epoch on the
    relabelled D_f together with D_r. Published: 1 epoch; Adam lr 1e-3 is our default for the optimiser.
    """

    name = "gaussian-amnesiac"
    needs_retain = True
    tasks = ("regression",)
    reference_epochs = 1

    epochs: int = hp(1, low=1)
    lr: float = hp(1e-3, low=0, low_open=True)
    optimizer: str = hp("adam", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, low=0)
    batch_size: int = hp(32, low=1)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        all_targets = torch.cat([request.retain.y, request.forget.y])
        noisy = request.forget.with_targets(gaussian_targets(all_targets, len(request.forget), self.seed))
        mixed = TensorData.concat([noisy, request.retain])
        ctx.fit(self, model, Phase("relabelled", self.batches(mixed), request.task_loss), request)
        return Outcome(model)
