"""Bad Teacher: distil from a competent teacher on retained data and an incompetent one on forgotten data."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.tensors import TensorData
from ..engine import Batch, Phase
from ..models.utils import reinitialize
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext
from .distill import distill_kl, frozen


class TwoTeacherKL:
    """KL to the competent teacher for rows flagged 0 and to the incompetent teacher for rows flagged 1
    (the batch's targets are these flags, not labels)."""

    def __init__(self, good: nn.Module, bad: nn.Module, temperature: float) -> None:
        self.good, self.bad, self.temperature = good, bad, temperature

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, is_forget = batch[0], batch[1].bool()
        with torch.no_grad():
            target = torch.where(is_forget[:, None], self.bad(x), self.good(x))
        return distill_kl(model(x), target, self.temperature)


@register
@dataclass(kw_only=True, frozen=True)
class BadTeacher(Method):
    """Bad Teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks
    Using an Incompetent Teacher", AAAI 2023).

    The student (a copy of the original) is distilled from the competent original on a ``retain_fraction``
    sample of D_r and from a randomly initialised incompetent teacher on D_f, both mixed in the same
    batches, KL at temperature ``kd_temperature``. Published: Adam lr 1e-4, 1 epoch, batch 256, T = 1,
    30 % of the retain set.
    """

    name = "bad-teacher"
    needs_retain = True
    reference_epochs = 1

    epochs: int = hp(1, low=1)
    lr: float = hp(1e-4, low=0, low_open=True)
    optimizer: str = hp("adam", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, low=0)
    batch_size: int = hp(256, low=1)
    kd_temperature: float = hp(1.0, low=0, low_open=True)
    retain_fraction: float = hp(0.3, low=0, high=1, low_open=True)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        good = request.frozen_original()
        bad = (
            request.model_factory()
            if request.model_factory is not None
            else reinitialize(copy.deepcopy(good), self.seed)
        )
        bad = frozen(bad.to(request.device))
        rng = np.random.default_rng(self.seed)
        n_keep = max(1, int(round(self.retain_fraction * len(request.retain))))
        kept = request.retain.subset(np.sort(rng.choice(len(request.retain), n_keep, replace=False)))
        mixed = TensorData(
            torch.cat([kept.x, request.forget.x]),
            torch.cat([torch.zeros(len(kept)), torch.ones(len(request.forget))]),
        )
        ctx.fit(self, model, Phase("mixed", self.batches(mixed), TwoTeacherKL(good, bad, self.kd_temperature)), request)
        return Outcome(model)
