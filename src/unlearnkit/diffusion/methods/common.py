"""What diffusion unlearning methods share: step-based recipes, paired retain batches, gradient clipping hook."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...data.tensors import Batches, Cycle, TensorData
from ...engine import Hook, StepContext
from ...errors import ConfigError
from ...methods.base import Method, UnlearnRequest, hp
from ..groups import freeze_all_but, group_parameters
from ..request import DiffusionRequest
from ..training import StepBatches


@dataclass(kw_only=True)
class DiffusionMethod(Method):
    """Base of text-to-image unlearning methods: ``steps`` optimiser steps on batches of (images, token ids)."""

    domain = "diffusion"
    tasks = ("generation",)

    steps: int = hp(200, low=1, doc="optimiser steps")
    lr: float = hp(1e-5, low=0, low_open=True)
    optimizer: str = hp("adam", choices=("adam", "adamw", "sgd"))
    weight_decay: float = hp(0.0, low=0)
    batch_size: int = hp(8, low=1)

    def check(self, request: UnlearnRequest) -> None:
        super().check(request)
        if not isinstance(request, DiffusionRequest):
            raise ConfigError(f"{self.name} erases concepts from text-to-image models; call diffusion.unlearn_concept")

    def stream(self, data: TensorData, salt: int = 0) -> StepBatches:
        return StepBatches(data, self.batch_size, self.steps, seed=self.seed + salt)

    def retain_cycle(self, request: UnlearnRequest, salt: int = 7) -> Cycle:
        return Cycle(Batches(request.retain, min(self.batch_size, len(request.retain)), seed=self.seed + salt))

    def trainable(self, model: nn.Module, group: str) -> list[nn.Parameter]:
        """The parameters of ``group`` (chosen by module name, :mod:`unlearnkit.diffusion.groups`); every other
        tensor — the text encoder included unless the group is ``text_encoder`` — is frozen."""
        params = group_parameters(model, group)
        freeze_all_but(model, params)
        return params

    def fit_steps(self, model: nn.Module, phase, request: UnlearnRequest, **kw):
        return self.fit(model, phase, request, epochs=1, **kw)


def on_device(batch: tuple[torch.Tensor, ...], like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(like.device) for t in batch)


class ClipHook(Hook):
    """Clip the global gradient norm of the trained parameters (before any mask is applied)."""

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm

    def after_backward(self, ctx: StepContext) -> None:
        torch.nn.utils.clip_grad_norm_(ctx.params, self.max_norm)
