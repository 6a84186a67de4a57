"""The cache of trained originals and retrained models that ``bench`` reuses.

An entry is a checkpoint folder named by the hash of everything its training depended on. An entry that
cannot be read (damaged weights, a missing or malformed ``meta.json``, an interrupted write) is reported and
removed, so that the caller trains it again instead of failing or using a wrong model.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import load, recover
from .errors import CheckpointError


def usable_entry(folder: Path, factory: Callable[[], nn.Module]) -> tuple[nn.Module, dict[str, Any]] | None:
    """``(model, meta)`` of the cache entry ``folder``, or None when there is none or it was damaged (then it
    is deleted and a line on stderr says it will be rebuilt)."""
    recover(folder)
    if not folder.exists():
        return None
    try:
        return load(folder, model=factory())
    except CheckpointError as exc:
        print(f"cache entry {folder} is damaged ({exc}); rebuilding it", file=sys.stderr)
    if folder.is_dir():
        shutil.rmtree(folder)
    else:
        folder.unlink()
    return None
