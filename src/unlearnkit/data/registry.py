"""Dataset registry: ``load_dataset(name)`` returns train/test tensors, class count and names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cifar import read_cifar
from .idx import FASHION_MNIST, MNIST, IdxSource, locate, read_idx
from .tensors import TensorData


@dataclass
class DatasetBundle:
    """A dataset ready for training: train and test :class:`TensorData`, the task and the class names."""

    name: str
    train: TensorData
    test: TensorData
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    task: str = "classification"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def output_dim(self) -> int:
        """Number of model outputs: classes, or 1 for regression."""
        return self.num_classes if self.task == "classification" else 1


Loader = Callable[..., DatasetBundle]
_DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``loader(data_dir=None, download=True) -> DatasetBundle`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        _DATASETS[name] = fn
        return fn

    return deco


def available_datasets() -> list[str]:
    return sorted(_DATASETS)


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of size ``n``."""
    from sklearn.model_selection import train_test_split

    if n >= len(y):
        return np.arange(len(y))
    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(idx)


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    train_subset: int | None = None,
    subset_seed: int = 0,
    download: bool = True,
) -> DatasetBundle:
    """Load a registered dataset. ``train_subset`` keeps a fixed class-stratified subset of the training set."""
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(available_datasets())}")
    bundle = _DATASETS[name](data_dir=data_dir, download=download)
    if train_subset is not None:
        if isinstance(train_subset, bool) or not isinstance(train_subset, int | np.integer):
            raise DataError(f"train_subset must be a whole number of examples, got {train_subset!r}")
        if train_subset < 2:
            raise DataError(f"train_subset must be >= 2, got {train_subset}")
        classes = len(np.unique(bundle.train.y.numpy())) if bundle.task == "classification" else 0
        if train_subset < classes:
            raise DataError(
                f"train_subset={train_subset} is smaller than the {classes} classes of {name}; a class-stratified "
                f"subset needs one example of each — give --train-subset {classes} or more"
            )
        stratify = bundle.train.y.numpy() if bundle.task == "classification" else np.zeros(len(bundle.train))
        bundle.train = bundle.train.subset(stratified_subset(stratify, train_subset, subset_seed))
    return bundle


def _images(x: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) → float tensors (N, C, H, W), standardised."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0
    if t.ndim == 3:
        t = t.unsqueeze(1)
    return (t - mean) / std


@register_dataset("digits")
def _digits(data_dir: str | Path | None = None, download: bool = True) -> DatasetBundle:
    """scikit-learn's bundled 8×8 digits (1 797 images), fixed stratified 80/20 split (seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    idx_tr, idx_te = train_test_split(np.arange(len(d.target)), test_size=0.2, stratify=d.target, random_state=0)

    def part(idx: np.ndarray) -> TensorData:
        return TensorData(torch.from_numpy(x[idx]).unsqueeze(1), torch.from_numpy(d.target[idx]).long())

    return DatasetBundle("digits", part(idx_tr), part(idx_te), 10, [str(i) for i in range(10)])


def _idx_dataset(source: IdxSource, names: list[str], mean: float, std: float) -> Loader:
    def loader(data_dir: str | Path | None = None, download: bool = True) -> DatasetBundle:
        folder = locate(source, data_dir, download=download)
        arrays = [read_idx(folder / f.name) for f in source.files]
        x_tr, y_tr, x_te, y_te = arrays
        if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
            raise DataError(f"{source.name} in {folder}: images and labels differ in count; re-download the files")
        return DatasetBundle(
            source.name,
            TensorData(_images(x_tr, mean, std), torch.from_numpy(y_tr.astype(np.int64))),
            TensorData(_images(x_te, mean, std), torch.from_numpy(y_te.astype(np.int64))),
            len(names),
            names,
        )

    return loader


FASHION_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
register_dataset("fashion-mnist")(_idx_dataset(FASHION_MNIST, FASHION_NAMES, 0.2860, 0.3530))
register_dataset("mnist")(_idx_dataset(MNIST, [str(i) for i in range(10)], 0.1307, 0.3081))


def _cifar(name: str, mean: tuple[float, ...], std: tuple[float, ...]) -> Loader:
    def loader(data_dir: str | Path | None = None, download: bool = True) -> DatasetBundle:
        x_tr, y_tr, x_te, y_te, names = read_cifar(name, data_dir)
        m = torch.tensor(mean).view(1, 3, 1, 1)
        s = torch.tensor(std).view(1, 3, 1, 1)

        def norm(x: np.ndarray) -> torch.Tensor:
            return (torch.from_numpy(x).float() / 255.0 - m) / s

        return DatasetBundle(
            name,
            TensorData(norm(x_tr), torch.from_numpy(y_tr)),
            TensorData(norm(x_te), torch.from_numpy(y_te)),
            len(names),
            names,
        )

    return loader


register_dataset("cifar10")(_cifar("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)))
register_dataset("cifar100")(_cifar("cifar100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)))
