"""The public Python API: :func:`unlearn` (and :func:`evaluate`, re-exported from metrics)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .data.tensors import as_tensor_data
from .engine import check_outputs
from .errors import ConfigError, ModelError
from .methods.base import TASKS, Method, UnlearnRequest, make_method
from .runtime import resolve_device, timed
from .validation import float32_working_copy, prepare_request_data


@dataclass
class UnlearnResult:
    """The unlearned model (a new object) with the method, its hyper-parameters and the seconds it took."""

    model: nn.Module
    method: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "hparams": self.hparams, "seconds": self.seconds}


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
    check_overlap: bool = True,
    **hparams: Any,
) -> UnlearnResult:
    """Remove the influence of ``forget`` from ``model`` with ``method``; the model passed in is never modified.

    ``forget`` and ``retain`` may each be a ``Dataset``, a ``DataLoader`` or a tuple ``(X, y)``.
    ``method`` is a registered name (see :func:`unlearnkit.available_methods`) or a :class:`Method` instance;
    ``hparams`` are its hyper-parameters (``epochs``, ``lr``, ``batch_size``, ``seed`` are common to all).
    ``model_factory`` builds a fresh model (used by ``retrain``; by default modules are re-initialised).
    Inputs are cast to the model's dtype (a float64 model is unlearned in float32 and returned as float64)
    and labels are checked against its outputs; an example found in both sets is refused unless
    ``check_overlap=False``. A run whose loss or weights stop being finite raises
    :class:`~unlearnkit.errors.DivergenceError`.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if isinstance(method, Method):
        if hparams:
            raise ConfigError("pass hyper-parameters either in the Method instance or as keywords, not both")
        algo = method
    else:
        algo = make_method(method, **hparams)
    dev = resolve_device(device)
    f = as_tensor_data(forget, "forget")
    r = as_tensor_data(retain, "retain")
    model, return_dtype = float32_working_copy(model)
    f, r, num_classes = prepare_request_data(
        model,
        f,
        r,
        task=task,
        num_classes=num_classes,
        device=dev,
        check_overlap=check_overlap,
        labels=algo.reads_labels,
    )
    request = UnlearnRequest(
        original=model,
        forget=f,
        retain=r,
        task=task,
        num_classes=num_classes,
        device=dev,
        progress=progress,
        model_factory=model_factory,
    )
    algo.check(request)
    work = copy.deepcopy(model).to(dev)
    with timed() as clock:
        out = algo.run(work, request)
    check_outputs(out, f.x[:256].to(dev), desc=algo.name, lr=getattr(algo, "lr", None))
    out.eval()
    if return_dtype is not None:
        out = out.to(return_dtype)
    return UnlearnResult(out, algo.name, algo.hparams(), clock.seconds)
