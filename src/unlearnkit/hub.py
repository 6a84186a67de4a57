"""Hugging Face Hub model ids, resolved from the local cache only (nothing is ever downloaded).

Wherever a model folder is taken (``lm-unlearn --model``, :func:`unlearnkit.lm.load_causal_lm`,
``diff-unlearn --model``, :func:`unlearnkit.diffusion.io.load_model`…), a hub id ``org/name`` that is not a
local folder is looked up in the local Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub``): ``models--org--name/refs/main`` names the snapshot whose folder is then loaded
like any other (``from_pretrained(id, local_files_only=True)`` reads the same files). The loaders' rules still
hold there: only safetensors weights (:mod:`unlearnkit.safe_weights`).

An id is a name, not a path: both parts follow the identifier rule of :mod:`unlearnkit.identifiers` (letters,
digits, ``.``, ``_``, ``-``; no ``..``, no leading dot), so an id can never point outside the cache. Fill the
cache once on a machine with network, e.g. ``hf download org/name`` (or ``huggingface-cli download``), or
``from_pretrained("org/name")``.

Reference: the cache layout of huggingface_hub (``src/huggingface_hub/file_download.py``,
``snapshot_download(..., local_files_only=True)`` in ``src/huggingface_hub/_snapshot_download.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError, require
from .identifiers import is_identifier

#: the longest part (org or name) the Hub accepts
MAX_PART = 96


def is_hub_id(value: object) -> bool:
    """Whether ``value`` has the form of a hub model id ``org/name`` (each part a safe identifier)."""
    if not isinstance(value, str) or value.count("/") != 1:
        return False
    org, name = value.split("/")
    return all(is_identifier(part) and len(part) <= MAX_PART for part in (org, name))


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as huggingface_hub finds it, read now (not at import): ``HF_HUB_CACHE``,
    ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME/hub``, ``XDG_CACHE_HOME/huggingface/hub``, ``~/.cache/huggingface/hub``."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(xdg).expanduser() / "huggingface" / "hub"


def cached_snapshot(repo_id: str, *, revision: str | None = None) -> Path:
    """The folder of ``repo_id``'s snapshot in the local hub cache (``revision``: a branch, tag or commit;
    default ``main``). A malformed id is a :class:`~unlearnkit.errors.CheckpointError`, and so is an id missing
    from the cache: the message says how to fill it. Nothing is downloaded."""
    if not is_hub_id(repo_id):
        raise CheckpointError(
            f"{repo_id!r} is not a hub model id; write it as ORG/NAME (letters, digits, '.', '_' or '-', each part "
            "starting with a letter or digit) or pass a local model folder"
        )
    hub = require("huggingface_hub", extra="lm")
    cache = hub_cache_dir()
    try:
        folder = hub.snapshot_download(
            repo_id, revision=revision, cache_dir=str(cache), local_files_only=True, tqdm_class=None
        )
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError is an OSError
        at = f" at revision {revision}" if revision else ""
        raise CheckpointError(
            f"{repo_id}{at} is neither a local folder nor in the Hugging Face cache {cache} (unlearnkit never "
            f"downloads); fill the cache once with `hf download {repo_id}` (or `huggingface-cli download "
            f"{repo_id}`) on a machine with network, point HF_HUB_CACHE / HF_HOME at a cache that holds it, "
            "or pass a save_pretrained folder"
        ) from exc
    return Path(folder)


def resolve_model_source(source: str | Path) -> Path:
    """Where to load a model from: ``source`` itself when it exists on disk (a folder), its cached snapshot
    folder when it is a hub id ``org/name`` (:func:`cached_snapshot`), else ``source`` as a path (the loader
    then says what is missing)."""
    path = Path(source)
    if path.exists() or not is_hub_id(str(source)) or isinstance(source, Path):
        return path
    return cached_snapshot(str(source))


def in_hub_cache(path: str | Path) -> bool:
    """Whether ``path`` lies in the hub cache (where unlearnkit never writes, not even to recover a save)."""
    try:
        Path(path).resolve().relative_to(hub_cache_dir().resolve())
    except ValueError:
        return False
    return True
