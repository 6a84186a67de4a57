"""Model registry: ``create_model(name, input_shape, num_classes)``.

Any user ``nn.Module`` that maps a batch of inputs to logits works wherever unlearnkit accepts a model; the
models here are conveniences for benchmarks. Models that expose ``features`` (input → embedding) and
``classifier`` (embedding → logits) also work with methods that need the split (see
:func:`unlearnkit.models.split_features`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import nn

from ..errors import ConfigError, ModelError, UnknownModelError
from .cnn import CNN
from .mlp import MLP
from .resnet import ResNet18
from .utils import classifier_layer, reinitialize, split_features

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory ``f(input_shape, num_classes, **kwargs)`` under ``name``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = factory
        return factory

    return deco


register_model("mlp")(MLP)
register_model("cnn")(CNN)
register_model("resnet18")(ResNet18)


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(
    name: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None, **kwargs
) -> nn.Module:
    """Build a registered model for inputs of ``input_shape`` (without batch dim) and ``num_classes`` outputs."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; choose one of {', '.join(available_models())}")
    if input_shape is None or num_classes is None:
        raise ConfigError(
            f"create_model({name!r}) needs input_shape and num_classes, e.g. create_model({name!r}, (1, 8, 8), 10)"
        )
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    factory = _REGISTRY[name]
    try:
        inspect.signature(factory).bind(tuple(input_shape), num_classes, **kwargs)
    except TypeError as exc:
        raise ModelError(f"model {name!r} does not take these options ({exc}); check the keyword names") from exc
    return factory(tuple(int(s) for s in input_shape), int(num_classes), **kwargs)


__all__ = [
    "CNN",
    "MLP",
    "ResNet18",
    "available_models",
    "classifier_layer",
    "create_model",
    "register_model",
    "reinitialize",
    "split_features",
]
