"""Checkpoints: a folder with ``model.safetensors`` and ``meta.json``, written atomically.

``meta.json`` records how to rebuild the model (``model``: registry name, input shape, outputs, kwargs) and
anything else worth keeping (dataset, recipe, seed, metrics). Loading never executes pickled code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import CheckpointError

WEIGHTS = "model.safetensors"
META = "meta.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_file(folder: Path, name: str) -> tuple[int, str]:
    """A temporary file beside the final one, with the permissions a plain ``open`` would give it."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path | torch.device):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None, *, overwrite: bool = False) -> Path:
    """Save ``model``'s state (safetensors) and ``meta`` into folder ``path``.

    Refuses to replace an existing checkpoint unless ``overwrite`` is true.
    """
    path = Path(path)
    if (path / WEIGHTS).exists() and not overwrite:
        raise CheckpointError(f"{path} already holds a checkpoint; choose a new path or pass overwrite=True")
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = _temp_file(path, WEIGHTS)
    os.close(fd)
    try:
        save_file(state, tmp)
        os.replace(tmp, path / WEIGHTS)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    write_json(path / META, meta or {})
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    p = Path(path) / META
    if not p.is_file():
        raise CheckpointError(f"{path} is not an unlearnkit checkpoint (no {META}); train one with `unlearnkit train`")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p} is not valid JSON: {exc}") from exc


def load(path: str | Path, model: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint folder. Without ``model``, rebuild it from the registry entry in ``meta.json``;
    with ``model`` (your own ``nn.Module``), load the weights into it. Returns ``(model, meta)``."""
    path = Path(path)
    meta = read_meta(path)
    if model is None:
        spec = meta.get("model")
        if not isinstance(spec, dict) or "name" not in spec:
            raise CheckpointError(f"{path}: meta.json does not say which model to build; pass model=your_module")
        from .models import create_model

        model = create_model(spec["name"], spec["input_shape"], spec["num_classes"], **spec.get("kwargs", {}))
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS}")
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(f"could not load {weights} into {type(model).__name__}: {exc}") from exc
    return model, meta


def same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()
