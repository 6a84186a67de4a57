"""Class unlearning by data poisoning: relabel the forgotten data, then fine-tune with the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..engine import Phase
from ..errors import ConfigError
from ..metrics.predict import predict_outputs
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


def confused_labels(model: nn.Module, request: UnlearnRequest) -> torch.Tensor:
    """For every class present in D_f, the other class the original model confuses it with most (the most
    frequent arg-max over the other classes among that class's forget examples); one label per example."""
    logits = predict_outputs(model, request.forget, device=request.device)
    y = request.forget.y.long()
    masked = logits.clone()
    masked[torch.arange(len(y)), y] = float("-inf")
    runner_up = masked.argmax(dim=1)
    out = torch.empty_like(y)
    for c in torch.unique(y):
        sel = y == c
        out[sel] = torch.bincount(runner_up[sel], minlength=int(request.num_classes)).argmax()
    return out


def random_other_labels(y: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """A label drawn uniformly among the classes other than ``y``, per example (fixed once, seeded)."""
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, num_classes, (len(y),), generator=gen)
    return (y.long() + shift) % num_classes


@register
@dataclass(kw_only=True, frozen=True)
class Poison(Method):
    """Class unlearning by data poisoning (after "Class Machine Unlearning for Complex Data via Concepts
    Inference and Data Poisoning", 2024): the forget data are relabelled once — ``mode="random"`` draws a
    wrong class per example, ``mode="targeted"`` uses the class the original confuses the forgotten class
    with most — and the model is fine-tuned on the poisoned forget data together with D_r.
    Defaults follow the fine-tuning baselines: SGD lr 0.01, 10 epochs. The outcome's report holds the labels
    given to the forget examples (``poison_labels``).
    """

    name = "poison"
    needs_retain = True
    reference_epochs = 10

    mode: str = hp("targeted", choices=("random", "targeted"))
    epochs: int = hp(10, low=1)
    lr: float = hp(0.01, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(128, low=1)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        if not request.num_classes or request.num_classes < 2:
            raise ConfigError("poison needs num_classes >= 2; pass num_classes to unlearn()")
        model.to(request.device)
        if self.mode == "targeted":
            labels = confused_labels(model, request)
        else:
            labels = random_other_labels(request.forget.y, request.num_classes, self.seed)
        poisoned = request.forget.with_targets(labels)
        phases = [
            Phase("poison", self.batches(poisoned, salt=1), request.task_loss),
            Phase("retain", self.batches(request.retain), request.task_loss),
        ]
        ctx.fit(self, model, phases, request)
        return Outcome(model, report={"poison_labels": labels.tolist()})
