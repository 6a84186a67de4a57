"""Helpers shared by the audits: fresh models, retraining, and running a method with bench's epoch scaling."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..api import unlearn
from ..data.tensors import TensorData
from ..engine import Recipe
from ..methods.base import get_method_class
from ..runtime import seed_everything
from ..training import train_model

#: pseudo-method: the "unlearned" model is the original itself (the no-unlearning baseline of an audit)
ORIGINAL = "original"
ModelFactory = Callable[[], nn.Module]


def check_known_method(method: str) -> None:
    """Refuse an unknown method name (the original model is audited too) before any training."""
    if method != ORIGINAL:
        get_method_class(method)


def audit_hparams(method: str, recipe: Recipe, hparams: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """A method's hyper-parameters as ``bench`` would choose them (:func:`unlearnkit.bench.resolve_hparams`),
    with the audit's ``seed`` always applied."""
    from ..bench import resolve_hparams

    return {**resolve_hparams(method, recipe, hparams, seed=seed), "seed": seed}


def fresh_model(factory: ModelFactory, seed: int) -> nn.Module:
    """A newly initialised model whose initialisation depends only on ``seed`` (``factory`` must not seed
    the generator itself, or every model would start from the same weights)."""
    seed_everything(seed)
    return factory()


def registry_factory(name: str, input_shape: Any, num_classes: int, **kwargs: Any) -> ModelFactory:
    """A factory for a registered model that leaves the random state alone, so that every shadow original,
    retrain and run drawn through :func:`fresh_model` gets its own initialisation from its own seed."""
    from ..models import create_model

    def factory() -> nn.Module:
        return create_model(name, input_shape, num_classes, **kwargs)

    return factory


def train_fresh(
    factory: ModelFactory,
    data: TensorData,
    recipe: Recipe,
    seed: int,
    *,
    task: str = "classification",
    device: str | torch.device | None = None,
    desc: str = "shadow",
) -> nn.Module:
    """Train a new model on ``data`` from an initialisation and data order set by ``seed``."""
    model = fresh_model(factory, seed)
    train_model(model, data, recipe, task=task, seed=seed, device=device, progress=False, desc=desc)
    return model.eval()


def run_method(
    method: str,
    original: nn.Module,
    forget: TensorData,
    retain: TensorData,
    *,
    factory: ModelFactory,
    recipe: Recipe,
    hparams: dict[str, Any] | None,
    seed: int,
    num_classes: int | None,
    task: str = "classification",
    device: str | torch.device | None = None,
) -> nn.Module:
    """The model ``method`` produces from ``original`` (a copy of the original for :data:`ORIGINAL`)."""
    if method == ORIGINAL:
        return copy.deepcopy(original).eval()
    res = unlearn(
        original,
        forget,
        retain,
        method,
        task=task,
        num_classes=num_classes,
        device=device,
        progress=False,
        model_factory=lambda: fresh_model(factory, seed),
        check_overlap=False,  # forget and retain are disjoint index splits
        **audit_hparams(method, recipe, hparams, seed),
    )
    return res.model
