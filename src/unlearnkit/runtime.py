"""Device selection, seeding and timing shared by every part of the project."""

from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError


@dataclass(kw_only=True)
class RunSettings:
    """What every benchmark run of the generative parts shares: the data (``train_subset`` of the training set,
    files under ``data_dir``), the seed, the cache and output folders, the device and progress bars. Configs
    that subclass it take these as keyword arguments."""

    train_subset: int | None = None
    data_dir: str | None = None
    seed: int = 0
    cache_dir: str | None = None
    out_dir: str | None = None
    device: str | None = None
    progress: bool = True


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device``, or CUDA when it is available and ``device`` is None/"auto", else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def cache_root() -> Path:
    """Where trained originals, retrains and models are cached: ``$UNLEARNKIT_CACHE`` or ~/.cache/unlearnkit."""
    return Path(os.environ.get("UNLEARNKIT_CACHE", Path.home() / ".cache" / "unlearnkit"))


def environment(device: str | torch.device | None = None) -> dict[str, str | int]:
    """What results depend on besides seeds and data: the torch version, the device and the CPU thread count
    (floating-point sums are split across threads, so another count gives other numbers)."""
    return {"torch": torch.__version__, "device": str(resolve_device(device)), "threads": torch.get_num_threads()}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded with ``seed`` (used for data order)."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@dataclass
class Timer:
    seconds: float = 0.0


@contextmanager
def timed():
    """Context manager measuring wall-clock seconds (synchronising CUDA when used)."""
    t = Timer()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    try:
        yield t
    finally:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t.seconds = time.perf_counter() - start
