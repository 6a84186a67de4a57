"""Running one registered method inside another, by composition: a wrapper builds the inner method with
:func:`~unlearnkit.methods.base.make_method` and runs it with a :class:`~unlearnkit.methods.context.RunContext`
that adds the wrapper's engine hooks to every training run the inner method makes (the inner method object is
neither changed nor patched)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..engine import Hook
from ..errors import ConfigError
from .base import Method, UnlearnRequest, make_method
from .context import Outcome, RunContext

WRAPPERS = ("prune-then-unlearn", "gradient-surgery")


def build_inner(wrapper: str, inner: str, inner_hparams: dict[str, Any], **defaults: Any) -> Method:
    """The inner method ``inner`` with ``inner_hparams`` (``defaults`` fill keys it leaves out)."""
    if inner in WRAPPERS:
        raise ConfigError(f"{wrapper}: inner={inner!r} is itself a wrapper; name a plain method such as 'ft' or 'ga'")
    if not isinstance(inner_hparams, dict):
        raise ConfigError(f"{wrapper}: inner_hparams must be a dict of the inner method's hyper-parameters")
    hps = {**{k: v for k, v in defaults.items() if v is not None}, **inner_hparams}
    return make_method(inner, **hps)


def check_inner_task(wrapper: Method, inner: Method, request: UnlearnRequest) -> None:
    """A wrapper supports the tasks its inner method supports."""
    if request.task not in inner.tasks:
        raise ConfigError(f"method {wrapper.name!r} supports {list(inner.tasks)} tasks, not {request.task!r}")


def run_with_hooks(
    inner: Method, model: nn.Module, request: UnlearnRequest, ctx: RunContext, hooks: Sequence[Hook]
) -> tuple[Outcome, int]:
    """Run ``inner`` on ``model`` with ``hooks`` added to each of its engine runs (through a child of ``ctx``,
    so the caller's context records those runs); returns the inner outcome and how many engine runs received the
    hooks (0 for methods that do not train)."""
    inner.check(request)
    before = len(ctx.fits)
    outcome = inner.run(model, request, ctx.with_hooks(list(hooks)))
    return outcome, len(ctx.fits) - before
