"""The public Python API: :func:`unlearn` (and :func:`evaluate`, re-exported from metrics)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .budget import Budget, as_budget, budget_hparams
from .data.tensors import as_tensor_data
from .errors import ConfigError, ModelError
from .guard import check_collapse
from .methods.base import TASKS, Method, UnlearnRequest, get_method_class, make_method
from .runtime import resolve_device, timed


@dataclass
class UnlearnResult:
    """The unlearned model (a new object) with the method, its hyper-parameters and the seconds it took."""

    model: nn.Module
    method: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: what happened besides the hyper-parameters: budget repeats, the collapse check, ``auto``'s choice
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "hparams": self.hparams, "seconds": self.seconds, "report": self.report}


def _infer_num_classes(model: nn.Module, x: torch.Tensor, device: torch.device) -> int:
    probe = copy.deepcopy(model).to(device).eval()
    with torch.no_grad():
        out = probe(x[:1].to(device))
    if out.ndim != 2:
        raise ModelError(f"a classifier must return logits shaped (batch, classes); got {tuple(out.shape)}")
    return int(out.shape[1])


def unlearn(
    model: nn.Module,
    forget: object,
    retain: object,
    method: str | Method = "salun",
    *,
    task: str = "classification",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    model_factory: Callable[[], nn.Module] | None = None,
    budget: str | Budget | None = "scaled",
    original_epochs: int | None = None,
    collapse_threshold: float | None = None,
    **hparams: Any,
) -> UnlearnResult:
    """Remove the influence of ``forget`` from ``model`` with ``method``; the model passed in is never modified.

    ``forget`` and ``retain`` may each be a ``Dataset``, a ``DataLoader`` or a tuple ``(X, y)``.
    ``method`` is a registered name (see :func:`unlearnkit.available_methods`) or a :class:`Method` instance;
    ``hparams`` are its hyper-parameters (``epochs``, ``lr``, ``batch_size``, ``seed`` are common to all).
    ``model_factory`` builds a fresh model (used by ``retrain``; by default modules are re-initialised).
    ``budget`` sets how long training methods run (:mod:`unlearnkit.budget`): ``"scaled"`` (default) scales the
    published epochs to ``original_epochs`` (the epochs the original was trained for, when given) and runs at
    least ``MIN_STEPS`` optimiser steps; ``"published"`` runs the published values as they are. An explicit
    ``epochs`` (or a :class:`Method` instance) runs exactly as given.
    After a classification method, the collapse guard (:mod:`unlearnkit.guard`) warns when retain accuracy
    falls below ``collapse_threshold`` (percent; default: the original's minus 20 points).
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    bud = as_budget(budget, original_epochs)
    explicit = isinstance(method, Method) or "epochs" in hparams  # run exactly as given: no scaling, no minimum
    if isinstance(method, Method):
        if hparams:
            raise ConfigError("pass hyper-parameters either in the Method instance or as keywords, not both")
        algo = method
    else:
        algo = make_method(method, **budget_hparams(get_method_class(method), hparams, bud))
    dev = resolve_device(device)
    f = as_tensor_data(forget, "forget")
    r = as_tensor_data(retain, "retain")
    if task == "classification" and num_classes is None:
        num_classes = _infer_num_classes(model, f.x, dev)
    request = UnlearnRequest(
        original=model,
        forget=f,
        retain=r,
        task=task,
        num_classes=num_classes,
        device=dev,
        progress=progress,
        model_factory=model_factory,
        budget=bud if algo.budgeted and not explicit else None,
    )
    algo.check(request)
    work = copy.deepcopy(model).to(dev)
    with timed() as clock:
        out = algo.run(work, request)
    out.eval()
    report: dict[str, Any] = {"budget": bud.mode, "budget_repeats": _repeats(algo)}
    if hasattr(algo, "choice"):  # auto: what it chose and why
        report["auto"] = algo.choice
    if task == "classification" and algo.name != "retrain":
        guard = check_collapse(algo.name, model, out, r, dev, threshold=collapse_threshold, seed=algo.seed)
        report["collapse"] = guard.to_dict()
    return UnlearnResult(out, algo.name, algo.hparams(), clock.seconds, report)


def _repeats(algo: Method) -> int:
    """How often each pass was repeated to meet the budget (a wrapper's inner method did the training)."""
    return int(getattr(getattr(algo, "_inner", algo), "budget_repeats", 1))
