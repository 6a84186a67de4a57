"""``bench``'s held-out set: data that is neither the original's training data nor the test set.

The held-out set gives unlearning runs their target (:mod:`unlearnkit.target`); the test set is left as it is.
``bench --heldout SPEC`` (``BenchConfig.heldout``) takes:

* ``split`` (default): with ``--train-subset``, up to :data:`HELDOUT_MAX` examples (class-stratified, seed 0)
  of the training split that the subset left out — the original's training data is unchanged; without a
  subset, a fixed class-stratified :data:`HELDOUT_FRACTION` of the training split (seed 0, at most
  :data:`HELDOUT_MAX`) is set aside before the original is trained, so the original trains on the rest;
* ``none``: no held-out set (the methods fall back to the weaker retain-confidence target);
* ``X_PATH,Y_PATH``: inputs and labels from ``.npy`` or ``.pt`` files (never unpickled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .arrays import read_array_file
from .registry import DatasetBundle, load_dataset, stratified_subset
from .tensors import TensorData

HELDOUT_FRACTION = 0.1
HELDOUT_MAX = 1000


@dataclass
class HeldoutSplit:
    """The original's training data, the held-out set (None for ``none``) and how it was drawn."""

    train: TensorData
    heldout: TensorData | None
    source: str
    #: how many training examples were set aside (0 unless ``split`` carved them out of the training data)
    carved: int = 0


def _stratify(bundle: DatasetBundle, data: TensorData) -> np.ndarray:
    return data.y.numpy() if bundle.task == "classification" else np.zeros(len(data))


def heldout_split(
    spec: str, bundle: DatasetBundle, *, data_dir: str | None = None, train_subset: int | None = None
) -> HeldoutSplit:
    """Resolve ``spec`` (see the module docstring) for ``bundle`` as loaded with ``train_subset``."""
    if spec == "none":
        return HeldoutSplit(bundle.train, None, "none")
    if spec != "split":
        paths = spec.split(",")
        if len(paths) != 2:
            raise ConfigError(f"--heldout must be 'split', 'none' or 'X_PATH,Y_PATH' (.npy or .pt files), got {spec!r}")
        x, y = (read_array_file(p, what=f"held-out {w}") for p, w in zip(paths, ("inputs", "labels")))
        data = TensorData(torch.as_tensor(x).float(), torch.as_tensor(y))
        return HeldoutSplit(bundle.train, data, f"files {spec}")
    if train_subset is not None:
        full = load_dataset(bundle.name, data_dir=data_dir).train
        kept = stratified_subset(_stratify(bundle, full), train_subset, 0)
        rest = np.setdiff1d(np.arange(len(full)), kept)
        if len(rest) >= 2:
            part = full.subset(rest)
            pick = stratified_subset(_stratify(bundle, part), min(HELDOUT_MAX, len(rest)), 0)
            return HeldoutSplit(
                bundle.train, part.subset(pick), f"{len(pick)} training-split examples outside the subset"
            )
    n = len(bundle.train)
    size = min(HELDOUT_MAX, max(2, round(HELDOUT_FRACTION * n)))
    if bundle.task == "classification":
        size = max(size, len(np.unique(bundle.train.y.numpy())))
    if n - size < 2:
        return HeldoutSplit(bundle.train, None, "none (the training split is too small to set examples aside)")
    held = stratified_subset(_stratify(bundle, bundle.train), size, 0)
    train = np.setdiff1d(np.arange(n), held)
    return HeldoutSplit(bundle.train.subset(train), bundle.train.subset(held), f"{size} examples set aside", size)
