"""Model families: how :func:`unlearnkit.unlearn` recognises a model and runs a method on it.

A family (classifier/regressor, causal language model, text-to-image diffusion, GAN) is one
:class:`Family` record, registered with :func:`register_family` by one module of :mod:`unlearnkit.families`. It
says how to *detect* its models, which module registers its methods (:mod:`unlearnkit.registry`), which options
beyond the common ones it takes, how to build the method, how to build the *request* the method reads, and how
to *finish* the result. :func:`run` is the one sequence every family goes through: build the method, build the
request, check it, train a copy, finish. The options every family shares mean the same everywhere (``device``,
``progress``, ``callbacks``, and ``seed``, a hyper-parameter of every method); a family-only option given to
another family is a :class:`~unlearnkit.errors.ConfigError`, never dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .callbacks import LossHistory, check_callbacks
from .errors import ConfigError, ModelError
from .methods.base import Method, UnlearnRequest
from .methods.context import Outcome, RunContext
from .registry import declare_family, make_method
from .result import UnlearnResult
from .runtime import resolve_device, timed


@dataclass
class Call:
    """What the caller asked for: the model and data as given, the common options and the family's own options
    (every one filled, given or default). ``state`` is where a family keeps what its ``finish`` needs."""

    model: Any
    forget: Any
    retain: Any
    device: torch.device
    progress: bool = True
    callbacks: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def _default_method(family: Family, call: Call, method: str | Method, hparams: dict[str, Any]) -> Method:
    return resolve_method(family.name, method, hparams)


def _default_finish(
    call: Call, algo: Method, request: UnlearnRequest, outcome: Outcome, ctx: RunContext, seconds: float
) -> UnlearnResult:
    report = {"method": outcome.report} if outcome.report else {}
    hparams = {**algo.hparams(), **outcome.hparams}
    return UnlearnResult(outcome.model.eval(), algo.name, hparams, seconds, report)


def _default_working_copy(call: Call, request: UnlearnRequest) -> nn.Module:
    return copy.deepcopy(request.original).to(request.device)


@dataclass(frozen=True)
class Family:
    """One family of models. ``detect(model)`` says whether a model (or a folder) is of the family;
    ``request(call, method)`` builds the :class:`UnlearnRequest` (it may load or wrap ``call.model``; the
    request's ``original`` is what the method unlearns); ``finish(call, method, request, outcome, ctx, seconds)``
    makes the :class:`UnlearnResult` from the method's :class:`~unlearnkit.methods.context.Outcome` and what its
    training runs did (the :class:`~unlearnkit.methods.context.RunContext`). ``options`` are the family's own
    options of :func:`unlearnkit.unlearn` with their defaults; ``methods_module`` is imported on the first query
    about the family's methods."""

    name: str
    methods_module: str
    default_method: str
    detect: Callable[[object], bool]
    request: Callable[[Call, Method], UnlearnRequest]
    finish: Callable[[Call, Method, UnlearnRequest, Outcome, RunContext, float], UnlearnResult] = _default_finish
    method: Callable[[Family, Call, Any, dict[str, Any]], Method] = _default_method
    working_copy: Callable[[Call, UnlearnRequest], nn.Module] = _default_working_copy
    options: Mapping[str, Any] = field(default_factory=dict)
    #: what the family's models are, for error messages ("a Hugging Face causal LM or its folder")
    describes: str = ""
    #: a catch-all family (the classifiers take any ``torch.nn.Module``): detected after every other family
    fallback: bool = False


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family``; detection follows registration order, with ``fallback`` families after the others."""
    if not family.name:
        raise ConfigError("a family needs a non-empty name")
    _FAMILIES[family.name] = family
    declare_family(family.name, family.methods_module)
    return family


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise ConfigError(f"unknown family {name!r}; choose one of {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def available_families() -> list[str]:
    return list(_FAMILIES)


def family_of(model: object) -> Family:
    """The first registered family whose ``detect`` accepts ``model`` (``fallback`` families last)."""
    for family in sorted(_FAMILIES.values(), key=lambda f: f.fallback):
        if family.detect(model):
            return family
    kinds = "; ".join(f"{f.name}: {f.describes}" for f in _FAMILIES.values() if f.describes)
    raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__} (models unlearnkit takes: {kinds})")


def family_options(family: Family, given: Mapping[str, Any]) -> dict[str, Any]:
    """The family's options: its defaults updated with ``given``. An option of another family is refused,
    naming the option, the family it belongs to and this one."""
    for name in given:
        if name not in family.options:
            owners = [f.name for f in _FAMILIES.values() if name in f.options]
            where = f"an option of the {' and '.join(owners)} family" if owners else "not an option"
            raise ConfigError(f"{name}= does not apply to the {family.name} family ({where}); remove it for this model")
    return {**family.options, **given}


def option_names() -> set[str]:
    """Every family's own options (what :func:`unlearnkit.unlearn` takes out of its keywords)."""
    return {name for f in _FAMILIES.values() for name in f.options}


def resolve_method(family: str, method: str | Method, hparams: dict[str, Any]) -> Method:
    """``method`` by name (built with ``hparams``) or a :class:`Method` instance (then no ``hparams``) of ``family``."""
    if isinstance(method, Method):
        if hparams:
            raise ConfigError("pass hyper-parameters either in the Method instance or as keywords, not both")
        algo = method
    elif isinstance(method, str):
        algo = make_method(method, family=family, **hparams)
    else:
        raise ConfigError(f"method must be a registered name or a Method instance, got {type(method).__name__}")
    if algo.domain != family:
        raise ConfigError(f"method {algo.name!r} is for {algo.domain} models; pick a {family} method")
    return algo


def run(
    family: Family,
    model: Any,
    forget: Any,
    retain: Any,
    method: str | Method | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    callbacks: Any = None,
    options: Mapping[str, Any] | None = None,
    **hparams: Any,
) -> UnlearnResult:
    """Unlearn with ``family``: build the method and the request, check them, run the method on a copy of the
    model (the model passed in is never modified) and finish the result."""
    history = LossHistory()  # the epochs' losses, for result.plot()
    call = Call(
        model,
        forget,
        retain,
        resolve_device(device),
        progress,
        (*check_callbacks(callbacks), history),
        family_options(family, dict(options or {})),
    )
    algo = family.method(family, call, family.default_method if method is None else method, hparams)
    request = family.request(call, algo)
    algo.check(request)
    work = family.working_copy(call, request)
    ctx = RunContext()
    with timed() as clock:
        outcome = algo.run(work, request, ctx)
    result = family.finish(call, algo, request, outcome, ctx, clock.seconds)
    result.history = history.epochs
    return result
