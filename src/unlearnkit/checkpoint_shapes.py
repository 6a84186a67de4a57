"""A checkpoint's ``meta.json`` is checked against its weights before the model is built.

``meta.json`` says how to rebuild the model (registry name, input shape, outputs, kwargs such as hidden
sizes); a meta that lies (``hidden: [10000000]``) would make the loader allocate gigabytes before the weights
prove it wrong. Here the model is first built on PyTorch's ``meta`` device, which allocates no memory, and
its parameter names and shapes are compared with the safetensors header, read without loading any tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from .errors import CheckpointError


def stored_shapes(weights: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors file's header (no tensor data is read)."""
    try:
        with safe_open(str(weights), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:  # safetensors raises its own SafetensorError (and others) for damaged files
        raise CheckpointError(
            f"{weights} is not a readable safetensors file ({exc}); the checkpoint is damaged or is not an "
            "unlearnkit checkpoint — train or save it again"
        ) from exc


def check_declared_shapes(build: Callable[[], nn.Module], weights: str | Path) -> None:
    """Build the model ``build`` describes on the ``meta`` device and refuse it, with
    :class:`CheckpointError`, unless its state has exactly the names and shapes stored in ``weights``."""
    stored = stored_shapes(weights)
    with torch.device("meta"):
        skeleton = build()
    declared = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    missing = sorted(set(declared) - set(stored))
    extra = sorted(set(stored) - set(declared))
    wrong = [k for k in declared if k in stored and declared[k] != stored[k]]
    fix = "meta.json does not describe these weights; restore the checkpoint's meta.json or train it again"
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{weights}: meta.json's model has {k} shaped {declared[k]} but the weights hold {stored[k]} "
            f"({len(wrong)} tensor(s) differ); {fix}"
        )
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"holds {extra[0]}, which meta.json's model does not have"
        raise CheckpointError(f"{weights} {what} ({len(missing)} missing, {len(extra)} unexpected); {fix}")
