"""A content-addressed checkpoint cache: one checkpoint folder per key of :func:`~.sharding.chain_keys`.

Every checkpoint records its ``root`` and its ``history`` (the slices it was trained on, in order), so
anyone can recompute its key from what it claims to have seen and compare it with the name it is stored
under (:meth:`CheckpointStore.check`).

A store lives in a local folder (:class:`CheckpointStore`) or behind any fsspec URL (:class:`FsspecStore`:
``file:///shared/ckpts``, ``s3://bucket/prefix``, ``gs://…``), so shard workers on other machines read and
write checkpoints without a shared filesystem. Both write the weights first and ``meta.json`` last, and a
checkpoint counts as present only when both exist.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import META, WEIGHTS, load, read_meta, save
from ..errors import CheckpointError, require
from .sharding import chain_keys


class CheckpointStore:
    """Checkpoints under ``root/<key>/`` written with :func:`unlearnkit.checkpoint.save` (atomic)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def weights_bytes(self, key: str) -> bytes:
        return (self.path(key) / WEIGHTS).read_bytes()

    def weights_digest(self, key: str) -> str:
        """SHA-256 of the stored weights file."""
        return hashlib.sha256(self.weights_bytes(key)).hexdigest()

    def has(self, key: str) -> bool:
        """Whether a complete checkpoint (weights, then meta, are written last-to-first) is stored."""
        folder = self.path(key)
        return (folder / WEIGHTS).is_file() and (folder / META).is_file()

    def put(self, key: str, model: nn.Module, meta: dict[str, Any]) -> Path:
        return save(model, self.path(key), {**meta, "key": key}, overwrite=True)

    def get(self, key: str, model: nn.Module) -> nn.Module:
        if not self.has(key):
            raise CheckpointError(f"no checkpoint {key[:12]}… in {self.root}; retrain the affected shard")
        load(self.path(key), model=model)
        return model

    def meta(self, key: str) -> dict[str, Any]:
        return read_meta(self.path(key))

    def history(self, key: str) -> list[list[int]]:
        """The recorded training history of checkpoint ``key`` (a list of slices of int ids); a ``meta.json``
        whose history is not that raises :class:`CheckpointError` naming the checkpoint."""
        return history_of(self.meta(key), f"checkpoint {key[:12]}… in {self.url}")

    def stored_keys(self) -> list[str]:
        """Every key with a ``meta.json`` in the store (complete or not), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _is_key(p.name) and (p / META).is_file())

    def stored_folders(self) -> list[str]:
        """Every key-named folder in the store, with or without ``meta.json``, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _is_key(p.name) and p.is_dir())

    def remove(self, key: str) -> None:
        """Delete checkpoint ``key``: ``meta.json`` first (from then on it no longer counts as present), then
        the weights and the folder. Removing a key that is not there does nothing."""
        folder = self.path(key)
        (folder / META).unlink(missing_ok=True)
        if folder.is_dir():
            shutil.rmtree(folder)

    def check(self, key: str) -> tuple[bool, str]:
        """Whether the checkpoint stored as ``key`` has a recorded history that hashes to ``key``."""
        if not self.has(key):
            return False, "missing checkpoint"
        meta = self.meta(key)
        root, history = meta.get("root"), history_of(meta, f"checkpoint {key[:12]}… in {self.url}")
        if not isinstance(root, str) or "history" not in meta:
            return False, "meta.json lacks root/history"
        computed = chain_keys(root, history)[-1] if history else root
        if computed != key or meta.get("key") != key:
            return False, "recorded history does not hash to the checkpoint's key"
        return True, "ok"


def history_of(meta: dict[str, Any], where: str) -> list[list[int]]:
    """``meta["history"]`` checked to be a list of lists of int ids (missing: empty); ``where`` names the
    checkpoint in the :class:`CheckpointError` raised otherwise."""
    history = meta.get("history", [])
    ok = isinstance(history, list) and all(
        isinstance(sl, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in sl) for sl in history
    )
    if not ok:
        raise CheckpointError(
            f"{where} has a damaged meta.json (history must be a list of lists of int ids, got "
            f"{json.dumps(history)[:60]}); remove that folder and run `unlearnkit resume --model DIR`"
        )
    return history


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _check_key(key: str) -> None:
    if not _is_key(key):
        raise CheckpointError(f"{key!r} is not a checkpoint key (64 hex digits)")


class FsspecStore(CheckpointStore):
    """The same layout (``<url>/<key>/model.safetensors`` and ``meta.json``) behind an fsspec URL."""

    def __init__(self, url: str) -> None:
        fsspec = require("fsspec", "ray")
        self.url = url.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.url)
        self.root = Path(self.base)

    def _p(self, key: str, name: str) -> str:
        _check_key(key)
        return f"{self.base.rstrip('/')}/{key}/{name}"

    def has(self, key: str) -> bool:
        return bool(self.fs.exists(self._p(key, WEIGHTS)) and self.fs.exists(self._p(key, META)))

    def put(self, key: str, model: nn.Module, meta: dict[str, Any]) -> Path:
        from safetensors.torch import save as to_bytes

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        self.fs.makedirs(f"{self.base.rstrip('/')}/{key}", exist_ok=True)
        with self.fs.open(self._p(key, WEIGHTS), "wb") as fh:
            fh.write(to_bytes(state))
        with self.fs.open(self._p(key, META), "wb") as fh:
            fh.write((json.dumps({**meta, "key": key}, indent=2, default=str) + "\n").encode())
        return Path(self._p(key, ""))

    def stored_keys(self) -> list[str]:
        base = self.base.rstrip("/")
        if not self.fs.exists(base):
            return []
        names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False)]
        return sorted(n for n in names if _is_key(n) and self.fs.exists(self._p(n, META)))

    def stored_folders(self) -> list[str]:
        base = self.base.rstrip("/")
        if not self.fs.exists(base):
            return []
        return sorted(
            n for n in (str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False)) if _is_key(n)
        )

    def remove(self, key: str) -> None:
        if self.fs.exists(self._p(key, META)):
            self.fs.rm(self._p(key, META))
        folder = f"{self.base.rstrip('/')}/{key}"
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def get(self, key: str, model: nn.Module) -> nn.Module:
        from safetensors.torch import load as from_bytes

        if not self.has(key):
            raise CheckpointError(f"no checkpoint {key[:12]}… in {self.url}; retrain the affected shard")
        model.load_state_dict(from_bytes(self.weights_bytes(key)))
        return model

    def weights_bytes(self, key: str) -> bytes:
        with self.fs.open(self._p(key, WEIGHTS), "rb") as fh:
            return fh.read()

    def meta(self, key: str) -> dict[str, Any]:
        with self.fs.open(self._p(key, META), "rb") as fh:
            raw = fh.read()
        try:
            return json.loads(raw.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"checkpoint metadata {key[:12]}… in {self.url} is damaged ({exc}); "
                "run `unlearnkit resume` to retrain the affected shard"
            ) from exc


def open_store(url: str | None, default: str | Path) -> CheckpointStore:
    """The store at fsspec ``url`` (a plain path is a local folder); ``default`` when ``url`` is ``None``."""
    if url is None:
        return CheckpointStore(default)
    if "://" not in str(url):
        return CheckpointStore(url)
    return FsspecStore(str(url))
