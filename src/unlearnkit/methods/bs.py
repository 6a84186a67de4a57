"""Boundary Shrink: push each forget example across its nearest decision boundary."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.tensors import Batches
from ..engine import Phase
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


def nearest_wrong_labels(
    reference: nn.Module, request: UnlearnRequest, bound: float, batch_size: int = 256
) -> torch.Tensor:
    """One FGSM step of size ``bound`` (L∞) on ``reference`` from each forget example; the label of the
    adversarial example, excluding the true class, is the example's nearest wrong class."""
    out = []
    for x, y in Batches(request.forget, batch_size, shuffle=False):
        x, y = x.to(request.device).float().requires_grad_(True), y.to(request.device).long()
        loss = nn.functional.cross_entropy(reference(x), y)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            logits = reference(x + bound * grad.sign())
            logits[torch.arange(len(y)), y] = float("-inf")
            out.append(logits.argmax(dim=1).cpu())
    return torch.cat(out)


@register
@dataclass(kw_only=True, frozen=True)
class BoundaryShrink(Method):
    """Boundary Shrink (Chen et al., "Boundary Unlearning", CVPR 2023): an FGSM step (bound 0.1) on a
    frozen copy of the original finds each forget example's nearest wrong class; the model is then
    fine-tuned on D_f toward those labels, shrinking the forgotten region. Published: SGD lr 1e-5,
    10 epochs, bound 0.1.
    """

    name = "bs"
    reference_epochs = 10

    epochs: int = hp(10, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(64, low=1)
    bound: float = hp(0.1, low=0, low_open=True, doc="L-infinity size of the FGSM step")

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        labels = nearest_wrong_labels(request.frozen_original(), request, self.bound)
        shrunk = request.forget.with_targets(labels)
        ctx.fit(self, model, Phase("forget", self.batches(shrunk), request.task_loss), request)
        return Outcome(model)
