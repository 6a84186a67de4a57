"""Running one registered method inside another: wrappers build the inner method with
:func:`~unlearnkit.methods.base.make_method` and add engine hooks to every training run it makes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..engine import Hook
from ..errors import ConfigError
from .base import Method, UnlearnRequest, make_method

WRAPPERS = ("prune-then-unlearn", "gradient-surgery")


def build_inner(wrapper: str, inner: str, inner_hparams: dict[str, Any], **defaults: Any) -> Method:
    """The inner method ``inner`` with ``inner_hparams`` (``defaults`` fill keys it leaves out)."""
    if inner in WRAPPERS:
        raise ConfigError(f"{wrapper}: inner={inner!r} is itself a wrapper; name a plain method such as 'ft' or 'ga'")
    if not isinstance(inner_hparams, dict):
        raise ConfigError(f"{wrapper}: inner_hparams must be a dict of the inner method's hyper-parameters")
    hps = {**{k: v for k, v in defaults.items() if v is not None}, **inner_hparams}
    return make_method(inner, **hps)


def run_with_hooks(
    inner: Method, model: nn.Module, request: UnlearnRequest, hooks: Sequence[Hook]
) -> tuple[nn.Module, int]:
    """Run ``inner`` on ``model`` with ``hooks`` added to each of its engine runs; returns the unlearned
    model and how many engine runs received the hooks (0 for methods that do not train)."""
    calls = 0
    plain_fit = inner.fit

    def fit_with_hooks(m, phases, req, *, hooks: Sequence[Hook] = (), **kwargs):
        nonlocal calls
        calls += 1
        return plain_fit(m, phases, req, hooks=[*hooks, *extra], **kwargs)

    extra = list(hooks)
    inner.check(request)
    inner.fit = fit_with_hooks  # type: ignore[method-assign]
    try:
        out = inner.run(model, request)
    finally:
        del inner.fit
    return out, calls
