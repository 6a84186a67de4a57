"""Checkpoints: a folder with ``model.safetensors`` and ``meta.json``, written atomically.

``meta.json`` records how to rebuild the model (``model``: registry name, input shape, outputs, kwargs) and
anything else worth keeping (dataset, recipe, seed, metrics). Loading never executes pickled code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from .checkpoint_shapes import check_declared_shapes
from .errors import CheckpointError, UnlearnkitError
from .outputs import (  # noqa: F401  (re-exported: the writers live in outputs.py, the one output discipline)
    _json_default,
    atomic_write_bytes,
    atomic_write_text,
    recover,
    staged_folder,
    stored_kind,
    write_json,
)

WEIGHTS = "model.safetensors"
META = "meta.json"


def save(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None, *, overwrite: bool = False) -> Path:
    """Save ``model``'s state (safetensors) and ``meta`` into folder ``path``, atomically as a pair: both
    files are written into a temporary folder, fsynced, and renamed into place together.

    Refuses to replace an existing checkpoint unless ``overwrite`` is true, and to write into a non-empty
    folder that is not a checkpoint. An *original* (``meta["kind"] == "original"``) is never replaced by anything
    but another original, even with ``overwrite``: unlearning results go to their own folder.
    """
    path = Path(path)
    if not str(path).strip() or str(path) in (".", ""):
        raise CheckpointError("the checkpoint folder name is empty; give a new folder, e.g. ckpt/model")
    recover(path)
    if path.exists():
        if (path / WEIGHTS).exists() or (path / META).exists():
            if not overwrite:
                raise CheckpointError(f"{path} already holds a checkpoint; choose a new path or pass overwrite=True")
            if stored_kind(path) == "original" and (meta or {}).get("kind") != "original":
                raise CheckpointError(
                    f"{path} holds an original checkpoint, which is never replaced by an unlearned or other model "
                    "(overwrite=True included); save to a new folder"
                )
        elif path.is_dir() and any(path.iterdir()):
            raise CheckpointError(f"{path} is a non-empty folder that is not a checkpoint; choose a new folder")
        elif not path.is_dir():
            raise CheckpointError(f"{path} exists and is not a folder; choose a new path")
    try:
        meta_text = json.dumps(meta or {}, indent=2, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"meta cannot be saved as JSON ({exc}); keep to numbers, strings, lists, dicts") from exc
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with staged_folder(path, replace=True) as tmp:
        save_file(state, str(tmp / WEIGHTS))
        (tmp / META).write_text(meta_text)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of checkpoint folder ``path`` as a dict; anything else raises :class:`CheckpointError`."""
    recover(path)
    p = Path(path) / META
    if not p.is_file():
        raise CheckpointError(f"{path} is not an unlearnkit checkpoint (no {META}); train one with `unlearnkit train`")
    return read_json_object(p, "the checkpoint is damaged — train or save it again")


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """The JSON object in the state file ``path`` (``meta.json``, ``exact.json``); a file that cannot be read, is
    not UTF-8 JSON or holds anything but an object is one :class:`CheckpointError` ending in ``fix``."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); {fix}") from exc
    except OSError as exc:
        raise CheckpointError(f"could not read {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a JSON object; {fix}")
    return obj


def _build_model(path: Path, meta: dict[str, Any]) -> nn.Module:
    spec = meta.get("model")
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError(f"{path}: meta.json does not say which model to build; pass model=your_module")
    missing = [k for k in ("input_shape", "num_classes") if k not in spec]
    if missing:
        raise CheckpointError(
            f"{path}: meta.json's model entry lacks {', '.join(missing)}; the checkpoint is damaged — train it "
            "again, or pass model=your_module"
        )
    from .models import create_model

    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: meta.json's model kwargs are not an object; the checkpoint is damaged")
    try:
        return create_model(spec["name"], spec["input_shape"], spec["num_classes"], **kwargs)
    except UnlearnkitError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: could not rebuild model {spec['name']!r} from meta.json: {exc}") from exc


def load(path: str | Path, model: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint folder. Without ``model``, rebuild it from the registry entry in ``meta.json``;
    with ``model`` (your own ``nn.Module``), load the weights into it. Returns ``(model, meta)``. The model
    ``meta.json`` describes is first checked against the weights' header without allocating anything
    (:mod:`unlearnkit.checkpoint_shapes`), so a meta that lies about sizes cannot make the loader allocate them.
    A damaged checkpoint (truncated, empty or foreign weights, malformed meta.json) raises
    :class:`CheckpointError`."""
    path = Path(path)
    meta = read_meta(path)
    weights = path / WEIGHTS
    if model is None:
        if weights.is_file():  # a meta.json that lies about sizes is refused before anything is allocated
            check_declared_shapes(lambda: _build_model(path, meta), weights)
        model = _build_model(path, meta)
    if not weights.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS}")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own SafetensorError (and others) for damaged files
        raise CheckpointError(
            f"{weights} is not a readable safetensors file ({exc}); the checkpoint is damaged or is not an "
            "unlearnkit checkpoint — train or save it again"
        ) from exc
    try:
        model.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(f"could not load {weights} into {type(model).__name__}: {exc}") from exc
    return model, meta


def same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()
