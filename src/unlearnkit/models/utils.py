"""Helpers that work on any user ``nn.Module``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ModelError


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Re-draw every parameter of ``model`` in place with its own ``reset_parameters`` (seeded).

    Raises :class:`ModelError` if a module owns parameters but has no ``reset_parameters`` method: such a
    model cannot be retrained from scratch without a factory.
    """
    torch.manual_seed(seed)
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        elif own:
            raise ModelError(
                f"module {name or type(module).__name__!r} has parameters but no reset_parameters(); "
                "give it one, or pass a model_factory that builds a fresh model"
            )
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
    return model


def classifier_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """The final linear layer of a classifier: ``model.classifier`` if it is (or ends in) one, else the
    last ``nn.Linear`` registered in the model."""
    clf = getattr(model, "classifier", None)
    if isinstance(clf, nn.Linear):
        return "classifier", clf
    last: tuple[str, nn.Linear] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise ModelError("the model has no nn.Linear output layer; this method needs one")
    return last


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the sub-module at dotted path ``name``."""
    parent = model
    parts = name.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], new)


def split_features(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """Return ``(features, classifier)`` such that ``classifier(features(x)) == model(x)``.

    A model declares the split by having both a ``features`` and a ``classifier`` attribute (modules or
    callables). Raises :class:`ModelError` otherwise, explaining how to declare it.
    """
    feats = getattr(model, "features", None)
    clf = getattr(model, "classifier", None)
    if callable(feats) and isinstance(clf, nn.Module):
        return feats, clf
    raise ModelError(
        f"{type(model).__name__} does not declare a feature extractor: give it a `features` attribute "
        "(input -> embedding) and a `classifier` module (embedding -> logits) with "
        "model(x) == model.classifier(model.features(x))"
    )
