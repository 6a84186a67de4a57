"""Checks at the boundary: hyper-parameter values, the data and model given to :func:`unlearnkit.unlearn`,
and output folders given on the command line.

Every check raises an :class:`~unlearnkit.errors.UnlearnkitError` subclass whose message names the problem
and the fix; inputs that can be converted without changing their meaning (float64 inputs for a float32
model, integral float labels) are converted instead of refused.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import outputs
from .data.tensors import TensorData
from .errors import ConfigError, DataError, ForgetSpecError, ModelError

#: rows compared at once when looking for examples present in both the forget and the retain set
_CHUNK = 4096


def check_finite_hparam(method: str, name: str, value: Any) -> None:
    """Refuse NaN and infinite hyper-parameter values (no range check can catch NaN: every comparison is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{method}: {name}={value!r} is not a finite number; give a finite value")


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's first floating parameter (None for a model without one)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def float32_working_copy(model: nn.Module) -> tuple[nn.Module, torch.dtype | None]:
    """A float64 model is unlearned as a float32 copy (every method's buffers and masks are float32) and cast
    back afterwards: returns ``(model to run, dtype to return in or None)``."""
    if model_dtype(model) == torch.float64:
        return copy.deepcopy(model).float(), torch.float64
    return model, None


def infer_num_classes(model: nn.Module, x: torch.Tensor, device: torch.device) -> int:
    """The number of logits the model returns for one example (on a private copy in eval mode)."""
    probe = copy.deepcopy(model).to(device).eval()
    try:
        with torch.no_grad():
            out = probe(x[:1].to(device))
    except (RuntimeError, IndexError, ValueError, TypeError) as exc:  # what a module raises for a wrong shape
        raise ModelError(
            f"the model could not run on the inputs (shape {tuple(x.shape[1:])}, dtype {x.dtype}): {exc}; "
            "pass inputs shaped and typed as the model expects"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"a classifier must return logits shaped (batch, classes); got {shape}")
    return int(out.shape[1])


def check_finite_data(data: TensorData, name: str) -> None:
    """Refuse NaN or infinite inputs or targets in ``data`` (named ``name`` in the message)."""
    for part, t in (("inputs", data.x), ("labels or targets", data.y)):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).reshape(len(t), -1).any(1).sum()) if t.ndim else 1
            raise DataError(
                f"{name}: the {part} of {bad} example(s) hold NaN or infinite values; clean or drop those examples"
            )


def check_training_data(model: nn.Module, data: TensorData, task: str, device: torch.device | str | None) -> None:
    """Refuse data a model cannot be trained on: no examples, NaN or infinite values, or (classification)
    labels that are not class indices of the model's outputs."""
    if len(data) == 0:
        raise DataError("the training set is empty; give at least one example to train on")
    check_finite_data(data, "train")
    if task == "classification":
        from .runtime import resolve_device

        class_labels(data, infer_num_classes(model, data.x, resolve_device(device)), "train")


def _cast_inputs(data: TensorData, dtype: torch.dtype | None, name: str) -> torch.Tensor:
    x = data.x
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise DataError(f"{name}: the inputs hold NaN or infinite values; clean or drop those examples")
        if dtype is not None and x.dtype != dtype:
            x = x.to(dtype)
    return x


def class_labels(data: TensorData, num_classes: int, name: str) -> torch.Tensor:
    y = data.y
    if y.ndim != 1:
        raise DataError(
            f"{name}: labels must be class indices shaped (N,), got shape {tuple(y.shape)}; "
            "for one-hot labels pass y.argmax(1)"
        )
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()) or not bool((y == y.round()).all()):
            bad = y[~(torch.isfinite(y) & (y == y.round()))][:5].tolist()
            raise DataError(f"{name}: labels must be whole class indices; found {bad}")
    elif y.dtype == torch.bool or y.is_complex():
        raise DataError(f"{name}: labels must be integer class indices, got dtype {y.dtype}")
    y = y.long()
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.numel():
        raise DataError(
            f"{name}: labels {sorted(set(bad[:20].tolist()))[:5]} are outside [0, {num_classes}) — the model has "
            f"{num_classes} outputs; relabel the data as 0..{num_classes - 1} or use a model with more outputs"
        )
    return y


def _regression_targets(data: TensorData, dtype: torch.dtype | None, name: str) -> torch.Tensor:
    y = data.y
    if y.dtype == torch.bool or y.is_complex():
        raise DataError(f"{name}: regression targets must be numbers, got dtype {y.dtype}")
    y = y.to(dtype or torch.float32) if not y.is_floating_point() or (dtype and y.dtype != dtype) else y
    if not bool(torch.isfinite(y).all()):
        raise DataError(f"{name}: the targets hold NaN or infinite values; clean or drop those examples")
    return y


def _fingerprints(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    flat_y = y.reshape(len(y), -1).double().sum(1)
    parts = [x[i : i + _CHUNK].reshape(min(_CHUNK, len(x) - i), -1).double() @ w for i in range(0, len(x), _CHUNK)]
    return torch.cat(parts) + math.pi * flat_y if parts else torch.zeros(0, dtype=torch.float64)


def overlap(forget: TensorData, retain: TensorData) -> list[int]:
    """Positions in ``forget`` of examples (same input and target) that are also in ``retain``."""
    fx, rx = forget.x, retain.x
    if len(fx) == 0 or len(rx) == 0:
        return []
    if fx.shape[1:] != rx.shape[1:]:
        raise DataError(
            f"forget inputs are shaped {tuple(fx.shape[1:])} but retain inputs {tuple(rx.shape[1:])}; "
            "both sets must come from the same data"
        )
    width = int(math.prod(fx.shape[1:]))
    w = torch.randn(width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ff, rf = _fingerprints(fx, forget.y, w), _fingerprints(rx, retain.y, w)
    candidates = torch.isin(ff, rf).nonzero().flatten().tolist()
    found = []
    for i in candidates:
        for j in (rf == ff[i]).nonzero().flatten().tolist():
            if torch.equal(fx[i], rx[j]) and torch.equal(forget.y[i], retain.y[j]):
                found.append(i)
                break
    return found


def prepare_request_data(
    model: nn.Module,
    forget: TensorData,
    retain: TensorData,
    *,
    task: str,
    num_classes: int | None,
    device: torch.device,
    check_overlap: bool = True,
    labels: bool = True,
) -> tuple[TensorData, TensorData, int | None]:
    """Validate the data of an unlearning request against the model, converting what is safe to convert.

    Inputs are cast to the model's floating dtype; classification labels become int64 class indices, which
    must lie in ``[0, classes)``; ``num_classes`` must agree with the model's outputs (it is inferred when
    None); with ``check_overlap``, an example present in both sets is refused. With ``labels=False`` (a
    label-agnostic method) the targets are passed on unread.
    """
    if len(forget) == 0:
        raise ForgetSpecError("the forget set is empty; give at least one example to forget")
    dtype = model_dtype(model)
    fx, rx = _cast_inputs(forget, dtype, "forget"), _cast_inputs(retain, dtype, "retain")
    if task == "classification":
        outputs = infer_num_classes(model, fx, device)
        if num_classes is not None and int(num_classes) != outputs:
            raise ModelError(
                f"num_classes={num_classes} contradicts the model, which returns {outputs} logits; "
                f"pass num_classes={outputs} (or leave it out) or give the matching model"
            )
        num_classes = outputs
        if labels:
            fy, ry = class_labels(forget, outputs, "forget"), class_labels(retain, outputs, "retain")
        else:
            fy, ry = forget.y, retain.y
    elif labels:
        fy, ry = _regression_targets(forget, dtype, "forget"), _regression_targets(retain, dtype, "retain")
    else:
        fy, ry = forget.y, retain.y
    f, r = TensorData(fx, fy), TensorData(rx, ry)
    if check_overlap:
        both = overlap(f, r)
        if both:
            raise ForgetSpecError(
                f"{len(both)} forget example(s) (positions {both[:5]}{' …' if len(both) > 5 else ''}) are also in "
                "the retain set; remove them from retain (parse_forget gives disjoint sets), or pass "
                "check_overlap=False if your data really holds duplicate examples"
            )
    return f, r, num_classes


def check_output_folder(out: str | Path | None, *, overwrite: bool, protect: str | Path | None = None) -> Path:
    """Validate a checkpoint folder to be created *before* any work (see :mod:`unlearnkit.outputs`): never
    the checkpoint ``protect`` nor a folder containing or inside it, never an original checkpoint unless this
    writes an original (``protect`` is None) with ``overwrite``, an existing model only with ``overwrite``,
    and a parent folder that can be written."""
    return outputs.check_output_folder(out, overwrite=overwrite, inputs=[protect], original=protect is None)


def check_results_folder(out: str | Path, *, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Validate a results folder *before* any work: a name, not a file, not a model folder nor inside one, not
    an input, either new, empty or an earlier results folder (which the new results replace as a whole)."""
    return outputs.check_output_folder(out, overwrite=False, inputs=inputs, results=True)


writable_parent = outputs.writable_parent
