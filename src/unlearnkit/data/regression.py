"""Regression datasets: the task kind ``"regression"`` (one float target per example, one model output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .registry import DatasetBundle, register_dataset
from .tensors import TensorData


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale both arrays with the training set's mean and standard deviation (per column)."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


@register_dataset("diabetes")
def _diabetes(data_dir: str | Path | None = None, download: bool = True) -> DatasetBundle:
    """scikit-learn's bundled diabetes progression data (442 patients, 10 features, Efron et al. 2004).

    Fixed 80/20 split (seed 0); features and targets are standardised with the training statistics, so
    an MAE of 1.0 is one standard deviation of the training targets.
    """
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    d = load_diabetes()
    x = d.data.astype(np.float32)
    y = d.target.astype(np.float32)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0)
    x_tr, x_te = standardise(x[idx_tr], x[idx_te])
    y_tr, y_te = standardise(y[idx_tr], y[idx_te])

    def part(xs: np.ndarray, ys: np.ndarray) -> TensorData:
        return TensorData(torch.from_numpy(xs.astype(np.float32)), torch.from_numpy(ys.astype(np.float32)))

    return DatasetBundle("diabetes", part(x_tr, y_tr), part(x_te, y_te), 1, ["target"], task="regression")
