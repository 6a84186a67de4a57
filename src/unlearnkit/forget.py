"""Forget-set specifications: which training examples to unlearn.

Specs are strings so they fit on a command line:

- ``random:0.1`` — a random 10 % of the training set; ``random:450`` — 450 random examples.
- ``class:3`` — every training example of class 3 (class-wise forgetting: class 3 also leaves the test set
  used for test accuracy, as in the papers). A class name works too (``class:Dress``).
- ``indices:FILE`` — training indices from a ``.txt`` (whitespace/comma separated), ``.json`` (a list) or
  ``.npy`` file.
- ``worst:METHOD:K`` — the K (count or fraction) examples hardest for METHOD to forget, found by the
  bi-level search of :mod:`unlearnkit.audit.worst_case`; needs ``context`` (the original model and data).
  Flags: ``:best`` (the reverse search), ``:gap`` (hardest relative to held-out models: what unlearning
  still fits but a retrain would not), ``:classes`` (K whole classes).

New kinds are added with :func:`register_forget_kind`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.tensors import TensorData
from .errors import ForgetSpecError


@dataclass
class ForgetSplit:
    """The outcome of a forget spec: disjoint forget / retain index arrays over the training set."""

    spec: str
    forget_idx: np.ndarray
    retain_idx: np.ndarray
    forget_class: int | None = None

    def forget(self, train: TensorData) -> TensorData:
        return train.subset(self.forget_idx)

    def retain(self, train: TensorData) -> TensorData:
        return train.subset(self.retain_idx)

    def test(self, test: TensorData) -> TensorData:
        """The test set used for TA: without the forgotten class for class-wise forgetting."""
        if self.forget_class is None:
            return test
        return test.subset(np.flatnonzero(test.y.numpy() != self.forget_class))

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "n_forget": int(len(self.forget_idx)),
            "n_retain": int(len(self.retain_idx)),
            "forget_class": self.forget_class,
        }


SpecKind = Callable[..., tuple[np.ndarray, int | None]]
_KINDS: dict[str, SpecKind] = {}
#: kinds that also receive ``context`` (e.g. the original model and training data) as a fifth argument
_CONTEXT_KINDS: set[str] = set()
#: kinds registered by modules imported on first use
_LAZY_KINDS: dict[str, str] = {"worst": "unlearnkit.audit.worst_case"}


def register_forget_kind(name: str, *, needs_context: bool = False) -> Callable[[SpecKind], SpecKind]:
    """Register ``fn(argument, train_labels, class_names, seed) -> (forget_indices, forget_class_or_None)``;
    with ``needs_context`` the kind is called with a fifth argument, the ``context`` given to
    :func:`parse_forget`."""

    def deco(fn: SpecKind) -> SpecKind:
        _KINDS[name] = fn
        if needs_context:
            _CONTEXT_KINDS.add(name)
        return fn

    return deco


def _kind_of(spec: str) -> str:
    kind = spec.split(":", 1)[0] if isinstance(spec, str) else ""
    if kind not in _KINDS and kind in _LAZY_KINDS:
        import importlib

        importlib.import_module(_LAZY_KINDS[kind])
    return kind


def needs_context(spec: str) -> bool:
    """Whether the forget spec's kind needs a ``context`` (the original model and data), e.g. ``worst:…``."""
    return _kind_of(spec) in _CONTEXT_KINDS


def validate_indices(values: object, n_train: int, origin: str = "indices") -> np.ndarray:
    """Check that ``values`` are unique in-range integers and return them sorted as int64."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:  # ragged or nested lists such as [1, 2, [3]]
        raise ForgetSpecError(f"{origin}: expected a flat list of integer indices ({exc})") from None
    if arr.ndim != 1:
        raise ForgetSpecError(f"{origin}: expected a flat list of indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ForgetSpecError(f"{origin}: the forget set is empty; give at least one training index")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][:5]
            raise ForgetSpecError(f"{origin}: indices must be integers; found {bad.tolist()}")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ForgetSpecError(f"{origin}: indices must be integers; found values of type {arr.dtype}")
    arr = arr.astype(np.int64)
    out_of_range = arr[(arr < 0) | (arr >= n_train)]
    if out_of_range.size:
        raise ForgetSpecError(
            f"{origin}: indices out of range [0, {n_train}): {out_of_range[:5].tolist()}"
            f"{' …' if out_of_range.size > 5 else ''}"
        )
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise ForgetSpecError(f"{origin}: duplicate indices {uniq[counts > 1][:5].tolist()}; list each once")
    return uniq


@register_forget_kind("random")
def _random(arg: str, y: np.ndarray, names: Sequence[str], seed: int) -> tuple[np.ndarray, int | None]:
    n = len(y)
    try:
        count = int(arg)
    except ValueError:
        try:
            frac = float(arg)
        except ValueError:
            raise ForgetSpecError(
                f"random:{arg}: give a fraction in (0, 1) like random:0.1 or a count like random:450"
            ) from None
        if math.isfinite(frac) and frac >= 1 and frac == int(frac):  # 1e2 or 100.0: a count written as a float
            count = int(frac)
        elif not 0 < frac < 1:
            raise ForgetSpecError(
                f"random:{arg}: give a fraction in (0, 1) like random:0.1 or a whole count like random:450"
            ) from None
        else:
            count = int(round(frac * n))
    if count < 1:
        raise ForgetSpecError(f"random:{arg}: selects no example of {n}; use a larger fraction or count")
    if count >= n:
        raise ForgetSpecError(f"random:{arg}: would forget all {n} training examples; nothing would remain")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=count, replace=False)), None


@register_forget_kind("class")
def _class(arg: str, y: np.ndarray, names: Sequence[str], seed: int) -> tuple[np.ndarray, int | None]:
    classes = sorted(int(c) for c in np.unique(y))
    if arg in names and not arg.lstrip("-").isdigit():
        c = list(names).index(arg)
    else:
        try:
            c = int(arg)
        except ValueError:
            raise ForgetSpecError(
                f"class:{arg}: unknown class; use an index in {classes} or one of {list(names)}"
            ) from None
    if c not in classes:
        raise ForgetSpecError(f"class:{arg}: unknown class; the training labels are {classes}")
    if len(classes) == 1:
        raise ForgetSpecError(f"class:{arg}: it is the only class; forgetting it would leave no data")
    return np.flatnonzero(y == c), c


def read_index_file(path: str | Path) -> object:
    """Indices from a .txt, .json or .npy file (values are validated by :func:`validate_indices`)."""
    p = Path(path)
    if not p.is_file():
        raise ForgetSpecError(f"indices file {p} does not exist")
    try:
        if p.suffix == ".npy":
            return np.load(p, allow_pickle=False)
        text = p.read_text()
        if p.suffix == ".json":
            return json.loads(text)
        tokens = text.replace(",", " ").split()
        return [float(t) if any(ch in t for ch in ".eE") else int(t) for t in tokens]
    except (ValueError, json.JSONDecodeError, OSError, EOFError) as exc:
        raise ForgetSpecError(f"could not read indices from {p}: {exc}; write integers (txt/json) or a .npy") from exc


@register_forget_kind("indices")
def _indices(arg: str, y: np.ndarray, names: Sequence[str], seed: int) -> tuple[np.ndarray, int | None]:
    return validate_indices(read_index_file(arg), len(y), origin=f"indices:{arg}"), None


def request_kind(forget_labels: torch.Tensor | np.ndarray, retain_labels: torch.Tensor | np.ndarray) -> str:
    """``"class-wise"`` when no retain example has a label of the forget set (the request removes whole
    classes: ``class:C``, ``worst:M:K:classes``, or an index file that happens to), else ``"examples"``."""
    forget_classes = np.unique(_numpy(forget_labels))
    if forget_classes.size and not np.isin(forget_classes, _numpy(retain_labels)).any():
        return "class-wise"
    return "examples"


def _numpy(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    return labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)


def parse_forget(
    spec: str,
    train_labels: torch.Tensor | np.ndarray,
    *,
    class_names: Sequence[str] = (),
    seed: int = 0,
    context: object | None = None,
) -> ForgetSplit:
    """Resolve a forget spec against the training labels into a :class:`ForgetSplit`. ``context`` is passed
    to kinds registered with ``needs_context`` (``worst:…`` reads the original model and training data)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ForgetSpecError(
            f"bad forget spec {spec!r}; use one of {', '.join(k + ':…' for k in sorted(_KINDS))} "
            "(e.g. random:0.1, class:3, indices:forget.txt)"
        )
    kind, arg = _kind_of(spec), spec.split(":", 1)[1]
    if kind not in _KINDS:
        raise ForgetSpecError(f"unknown forget kind {kind!r} in {spec!r}; choose one of {', '.join(sorted(_KINDS))}")
    y = np.asarray(train_labels)
    extra = (context,) if kind in _CONTEXT_KINDS else ()
    forget_idx, forget_class = _KINDS[kind](arg, y, class_names, seed, *extra)
    forget_idx = validate_indices(forget_idx, len(y), origin=spec)
    if len(forget_idx) >= len(y):
        raise ForgetSpecError(f"{spec}: the forget set is all {len(y)} training examples; nothing would remain")
    retain_idx = np.setdiff1d(np.arange(len(y)), forget_idx, assume_unique=True)
    return ForgetSplit(spec, forget_idx, retain_idx, forget_class)
