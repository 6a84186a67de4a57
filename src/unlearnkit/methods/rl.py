"""RL: random labels on the forget set, true labels on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..engine import SCHEDULES, Batch, Phase
from ..errors import ConfigError
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


class RandomLabelLoss:
    """Cross-entropy against labels drawn uniformly at random for every batch (seeded)."""

    def __init__(self, num_classes: int, seed: int) -> None:
        self.num_classes = num_classes
        self.gen = torch.Generator()
        self.gen.manual_seed(seed)

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x = batch[0]
        labels = torch.randint(0, self.num_classes, (x.shape[0],), generator=self.gen).to(x.device)
        return nn.functional.cross_entropy(model(x), labels)


def random_label_phases(method: Method, request: UnlearnRequest) -> list[Phase]:
    """Each epoch: forget batches with random labels, then retain batches with their true labels."""
    if not request.num_classes or request.num_classes < 2:
        raise ConfigError("random labelling needs num_classes >= 2; pass num_classes to unlearn()")
    return [
        Phase("forget", method.batches(request.forget, salt=1), RandomLabelLoss(request.num_classes, method.seed)),
        Phase("retain", method.batches(request.retain), request.task_loss),
    ]


@register
@dataclass(kw_only=True, frozen=True)
class RandomLabel(Method):
    """Random labelling (Golatkar et al., CVPR 2020; setting of SalUn, Fan et al., ICLR 2024):
    relabel D_f uniformly at random each epoch and train on it and D_r. Published: lr 0.01–0.013, 10 epochs."""

    name = "rl"
    needs_retain = True
    reference_epochs = 10

    epochs: int = hp(10, low=1)
    lr: float = hp(0.01, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(128, low=1)
    schedule: str = hp("constant", choices=SCHEDULES, doc="learning-rate schedule over the run (published: constant)")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        ctx.fit(self, model, random_label_phases(self, request), request)
        return Outcome(model)
