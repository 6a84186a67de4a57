"""Checkpoints: a folder with ``model.safetensors`` and ``meta.json``, written atomically.

``meta.json`` records how to rebuild the model (``model``: registry name, input shape, outputs, kwargs) and
anything else worth keeping (dataset, recipe, seed, metrics). Loading never executes pickled code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .checkpoint_shapes import check_declared_shapes
from .errors import CheckpointError, UnlearnkitError, storage_errno, storage_error

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
    except OSError as exc:
        if storage_errno(exc) is None:
            raise
        raise storage_error(exc, path) from exc
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


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.is_dir() else []


def recover(path: str | Path) -> None:
    """Finish an interrupted replacement: when ``path`` is missing but the copy set aside while replacing it
    is there, put that copy back; stale set-aside copies next to an existing ``path`` are removed."""
    path = Path(path)
    backups = _backups(path)
    if not backups:
        return
    if not path.exists():
        os.replace(backups[-1], path)
        backups = backups[:-1]
    for b in backups:
        shutil.rmtree(b, ignore_errors=True)


@contextmanager
def staged_folder(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Write a folder atomically: yield an empty temporary folder beside ``path``; when the block succeeds,
    its files are fsynced and the folder takes the name ``path`` in one rename. On any error (Ctrl-C
    included) the temporary folder is removed and ``path`` is left as it was.

    An existing ``path`` is swapped out (set aside, the new folder renamed in, the old one deleted) when
    ``replace`` is true; otherwise the new files are moved into it one by one, each with an atomic rename.
    """
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc}; choose a folder you can write to") from exc
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        recover(path)
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            os.replace(tmp, path)  # an empty folder is replaced in the same rename
        elif replace:
            aside = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.old-"))
            os.replace(path, aside)
            os.replace(tmp, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            for f in sorted(tmp.iterdir()):
                os.replace(f, path / f.name)
        _fsync_dir(parent)
    except Exception as exc:  # a full disk or a file-size limit is one line; anything else is passed on
        if storage_errno(exc) is None:
            raise
        raise storage_error(exc, path) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


def stored_kind(path: str | Path) -> str | None:
    """The ``kind`` recorded in an existing checkpoint's meta.json, or None when it has none or is unreadable."""
    try:
        data = json.loads((Path(path) / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of checkpoint folder ``path`` as a dict; anything else raises :class:`CheckpointError`."""
    recover(path)
    p = Path(path) / META
    if not p.is_file():
        raise CheckpointError(f"{path} is not an unlearnkit checkpoint (no {META}); train one with `unlearnkit train`")
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{p} is not valid JSON ({exc}); the checkpoint is damaged — train or save it again"
        ) from exc
    except OSError as exc:
        raise CheckpointError(f"could not read {p}: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{p} holds a {type(meta).__name__}, not an object; the checkpoint is damaged — train or save it again"
        )
    return meta


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
