"""The shared interface of unlearning methods (the registry is :mod:`unlearnkit.registry`, re-exported here).

A method is a frozen keyword-only dataclass whose fields are its hyper-parameters (with the published defaults)
and whose :meth:`Method.run` turns a *copy* of the original model into the unlearned model, training through the
:class:`~unlearnkit.methods.context.RunContext` it is given and returning an
:class:`~unlearnkit.methods.context.Outcome`; the method object itself never changes. Register it with
:func:`register`; it is then available by name from :func:`unlearnkit.unlearn`, the CLI and ``bench``, and
:func:`unlearnkit.contract.check_method` checks it.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..budget import Budget
from ..data.tensors import Batches, TensorData
from ..engine import Hook, Recipe
from ..errors import ConfigError
from ..losses import TASK_LOSSES
from ..registry import _METHODS, available_methods, get_method_class, make_method, register  # noqa: F401  (re-exported)
from ..target import Target
from ..validation import check_finite_hparam
from .context import Outcome, RunContext

TASKS = tuple(TASK_LOSSES)


def hp(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple | None = None,
    doc: str = "",
) -> Any:
    """Declare a hyper-parameter field with its valid range (checked when the method is built)."""
    meta = {"low": low, "high": high, "low_open": low_open, "choices": choices, "doc": doc}
    return field(default=default, metadata=meta)


@dataclass
class UnlearnRequest:
    """Everything a method may read besides its hyper-parameters.

    ``original`` must never be modified; use :meth:`frozen_original` for a teacher/reference copy.
    """

    original: nn.Module
    forget: TensorData
    retain: TensorData
    task: str = "classification"
    num_classes: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    model_factory: Callable[[], nn.Module] | None = None
    #: how long training methods run (see :mod:`unlearnkit.budget`); None runs the hyper-parameters as given
    budget: Budget | None = None
    #: where retraining lands (:mod:`unlearnkit.target`); with it, every :meth:`RunContext.fit` run is probed,
    #: stopped at the target, kept at its best state and rolled back from a collapse (:mod:`unlearnkit.probe`)
    target: Target | None = None
    #: the user's :class:`~unlearnkit.callbacks.Callback` objects, run by every :meth:`RunContext.fit`
    callbacks: tuple[Hook, ...] = ()
    #: extra engine hooks for every :meth:`RunContext.fit` run (``auto`` measures and stops its trials with one)
    hooks: tuple[Hook, ...] = ()

    def frozen_original(self) -> nn.Module:
        """A gradient-free copy of the original model in eval mode on the request's device."""
        ref = copy.deepcopy(self.original).to(self.device).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    def task_loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The training loss of the task (cross-entropy for classification, MSE for regression)."""
        return TASK_LOSSES[self.task](model, batch)


@dataclass(kw_only=True, frozen=True)
class Method(ABC):
    """Base class of unlearning methods. Subclasses are frozen keyword-only dataclasses of hyper-parameters
    (``@dataclass(kw_only=True, frozen=True)``): a run never changes them; what it finds goes in its
    :class:`~unlearnkit.methods.context.Outcome`. ``dataclasses.replace(method, lr=...)`` makes a variant."""

    name: ClassVar[str] = ""
    #: which family of models the method is for: "classifier" (classification/regression), "lm", "diffusion";
    #: names are unique within a domain, so ``ga`` can exist for classifiers and for language models
    domain: ClassVar[str] = "classifier"
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    #: epochs of the published recipe, relative to a 182-epoch original (used by ``bench`` to scale)
    reference_epochs: ClassVar[int] = 182
    #: False for label-agnostic methods: their data's labels are then neither read nor validated
    reads_labels: ClassVar[bool] = True
    #: whether :mod:`unlearnkit.budget` may stretch the method's training (not for ``retrain``)
    budgeted: ClassVar[bool] = True
    #: whether its :meth:`RunContext.fit` runs are probed against ``request.target`` (not for ``retrain``)
    probed: ClassVar[bool] = True
    #: whether the method trains on (or measures) the retain set: an empty one is refused in :meth:`check`
    needs_retain: ClassVar[bool] = False
    #: hyper-parameters :func:`unlearnkit.contract.check_method` runs the method with on its tiny problem, where
    #: the defaults would make the check slow (e.g. ``auto``'s search time); empty: the published defaults
    contract_hparams: ClassVar[dict[str, Any]] = {}

    seed: int = hp(0, doc="seed for data order and any random draw of the method")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check_finite_hparam(self.name, f.name, value)
            meta = f.metadata
            if not meta:
                continue
            if meta.get("choices") is not None and value not in meta["choices"]:
                raise ConfigError(
                    f"{self.name}: {f.name}={value!r} is not valid; choose one of {list(meta['choices'])}"
                )
            low, high = meta.get("low"), meta.get("high")
            if low is None and high is None:
                continue
            if value is None and f.default is None:  # an optional knob left off (its range is for a given value)
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{self.name}: {f.name} must be a number, got {value!r}")
            too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
            if too_low or (high is not None and value > high):
                lo = "-inf" if low is None else ("(" if meta.get("low_open") else "[") + f"{low}"
                hi = "inf" if high is None else f"{high}]"
                raise ConfigError(f"{self.name}: {f.name}={value!r} is out of range; valid range is {lo}, {hi}")

    def hparams(self) -> dict[str, Any]:
        """The hyper-parameters as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def hparam_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def check(self, request: UnlearnRequest) -> None:
        """Validate the request for this method (task support, non-empty sets). Override to add checks."""
        if request.task not in self.tasks:
            raise ConfigError(f"method {self.name!r} supports {list(self.tasks)} tasks, not {request.task!r}")
        if len(request.forget) == 0:
            raise ConfigError("the forget set is empty; give at least one example to forget")
        if self.needs_retain and len(request.retain) == 0:
            raise ConfigError(
                f"method {self.name!r} needs retain data but the retain set is empty; give retain examples or "
                "choose a method that uses only the forget set (e.g. ga)"
            )

    @abstractmethod
    def run(self, model: nn.Module, request: UnlearnRequest, ctx: RunContext) -> Outcome:
        """Unlearn: modify ``model`` (already a private copy of the original; ``request.original`` is never
        touched), training through ``ctx.fit(self, model, phases, request, hooks=...)``, and return an
        :class:`Outcome` holding the unlearned model."""

    # ---- helpers shared by the methods -------------------------------------------------------------
    def recipe(self, **overrides: Any) -> Recipe:
        """A :class:`Recipe` from the method's own ``epochs``/``lr``/``batch_size``/… fields."""
        keys = {f.name for f in dataclasses.fields(Recipe)}
        values = {k: getattr(self, k) for k in keys if hasattr(self, k)}
        values.update(overrides)
        return Recipe(**values)

    def batches(self, data: TensorData, batch_size: int | None = None, salt: int = 0) -> Batches:
        bs = batch_size if batch_size is not None else getattr(self, "batch_size", 128)
        return Batches(data, bs, shuffle=True, seed=self.seed + salt)
