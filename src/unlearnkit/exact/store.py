"""A content-addressed checkpoint cache: one checkpoint folder per key of :func:`~.sharding.chain_keys`.

Every checkpoint records its ``root`` and its ``history`` (the slices it was trained on, in order), so
anyone can recompute its key from what it claims to have seen and compare it with the name it is stored
under (:meth:`CheckpointStore.check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import META, WEIGHTS, load, read_meta, save
from ..errors import CheckpointError
from .sharding import chain_keys


class CheckpointStore:
    """Checkpoints under ``root/<key>/`` written with :func:`unlearnkit.checkpoint.save` (atomic)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise CheckpointError(f"{key!r} is not a checkpoint key (64 hex digits)")
        return self.root / key

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

    def check(self, key: str) -> tuple[bool, str]:
        """Whether the checkpoint stored as ``key`` has a recorded history that hashes to ``key``."""
        if not self.has(key):
            return False, "missing checkpoint"
        meta = self.meta(key)
        root, history = meta.get("root"), meta.get("history")
        if not isinstance(root, str) or not isinstance(history, list):
            return False, "meta.json lacks root/history"
        computed = chain_keys(root, history)[-1] if history else root
        if computed != key or meta.get("key") != key:
            return False, "recorded history does not hash to the checkpoint's key"
        return True, "ok"
