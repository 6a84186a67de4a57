"""The public Python API: :func:`unlearn` (and :func:`evaluate`, re-exported from metrics)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .data.tensors import as_tensor_data
from .errors import ConfigError, ModelError
from .methods.base import TASKS, Method, UnlearnRequest, make_method
from .runtime import resolve_device, timed


@dataclass
class UnlearnResult:
    """The unlearned model (a new object) with the method, its hyper-parameters and the seconds it took."""

    model: nn.Module
    method: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "hparams": self.hparams, "seconds": self.seconds}


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
    **hparams: Any,
) -> UnlearnResult:
    """Remove the influence of ``forget`` from ``model`` with ``method``; the model passed in is never modified.

    ``forget`` and ``retain`` may each be a ``Dataset``, a ``DataLoader`` or a tuple ``(X, y)``.
    ``method`` is a registered name (see :func:`unlearnkit.available_methods`) or a :class:`Method` instance;
    ``hparams`` are its hyper-parameters (``epochs``, ``lr``, ``batch_size``, ``seed`` are common to all).
    ``model_factory`` builds a fresh model (used by ``retrain``; by default modules are re-initialised).
    Text-to-image models (a diffusers pipeline) take ``forget="object:NAME"`` and ``retain=<ConceptData>``.
    """
    from .diffusion.dispatch import is_text_to_image, unlearn_text_to_image

    if is_text_to_image(model):
        return unlearn_text_to_image(model, forget, retain, method, device=device, progress=progress, **hparams)
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
    )
    algo.check(request)
    work = copy.deepcopy(model).to(dev)
    with timed() as clock:
        out = algo.run(work, request)
    out.eval()
    return UnlearnResult(out, algo.name, algo.hparams(), clock.seconds)
