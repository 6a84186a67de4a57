"""Boundary Expanding: send the forget set to an extra "shadow" class, then remove that class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..engine import Phase
from ..errors import ModelError
from ..models.utils import classifier_layer, set_submodule
from .base import Method, UnlearnRequest, hp, register
from .context import Outcome, RunContext


def widened(layer: nn.Linear, extra: int = 1, seed: int = 0) -> nn.Linear:
    """A copy of ``layer`` with ``extra`` more outputs (the new rows freshly initialised from ``seed``; the global
    random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(layer.in_features, layer.out_features + extra, bias=layer.bias is not None)
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight[: layer.out_features] = layer.weight
        if layer.bias is not None:
            new.bias[: layer.out_features] = layer.bias
    return new


def narrowed(layer: nn.Linear, out_features: int) -> nn.Linear:
    """A copy of ``layer`` keeping only its first ``out_features`` outputs."""
    new = nn.Linear(layer.in_features, out_features, bias=layer.bias is not None)
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight[:out_features])
        if layer.bias is not None:
            new.bias.copy_(layer.bias[:out_features])
    return new


@register
@dataclass(kw_only=True, frozen=True)
class BoundaryExpanding(Method):
    """Boundary Expanding (Chen et al., "Boundary Unlearning", CVPR 2023): widen the output layer by one
    shadow class, fine-tune D_f toward it (its examples leave their old decision regions), then prune
    the shadow output so the returned model has the original head shape. Published: SGD lr 1e-5,
    10 epochs.
    """

    name = "be"
    reference_epochs = 10

    epochs: int = hp(10, low=1)
    lr: float = hp(1e-5, low=0, low_open=True)
    momentum: float = hp(0.9, low=0, high=0.999)
    weight_decay: float = hp(5e-4, low=0)
    batch_size: int = hp(64, low=1)

    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        name, head = classifier_layer(model)
        classes = head.out_features
        if request.num_classes is not None and request.num_classes != classes:
            raise ModelError(
                f"be: the output layer {name!r} has {classes} outputs but num_classes={request.num_classes}; "
                "give the model a final nn.Linear with one output per class"
            )
        set_submodule(model, name, widened(head, seed=self.seed))
        shadow = request.forget.with_targets(torch.full((len(request.forget),), classes, dtype=torch.long))
        ctx.fit(self, model, Phase("shadow", self.batches(shadow), request.task_loss), request)
        set_submodule(model, name, narrowed(classifier_layer(model)[1], classes))
        return Outcome(model)
