"""Plain tensor datasets and a fast, seeded mini-batch iterator.

Everything the project trains on is turned into a :class:`TensorData` at the API boundary, so the user may
pass a ``torch.utils.data.Dataset``, a ``DataLoader`` or a tuple ``(X, y)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError


@dataclass(frozen=True)
class TensorData:
    """Inputs ``x`` and targets ``y`` with the same first dimension."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise DataError(
                f"inputs and targets differ in length ({self.x.shape[0]} vs {self.y.shape[0]}); "
                "pass one target per example"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> TensorData:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return TensorData(self.x[idx], self.y[idx])

    def with_targets(self, y: torch.Tensor) -> TensorData:
        """The same inputs with other targets (e.g. random labels)."""
        return TensorData(self.x, y)

    @staticmethod
    def concat(parts: Sequence[TensorData]) -> TensorData:
        return TensorData(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


def _stack(items: list, what: str) -> torch.Tensor:
    try:
        return torch.stack([torch.as_tensor(v) for v in items])
    except (TypeError, RuntimeError) as exc:
        raise DataError(f"could not stack the dataset's {what} into one tensor: {exc}") from exc


def as_tensor_data(data: object, name: str = "data") -> TensorData:
    """Turn a ``TensorData``, ``(X, y)`` tuple, ``Dataset`` or ``DataLoader`` into a :class:`TensorData`.

    Datasets and loaders are read once, in order, into memory. A Hugging Face ``datasets.Dataset`` (or a
    ``DatasetDict`` of one split) gives its image/input and label columns (:mod:`unlearnkit.data.hf_datasets`).
    """
    from .hf_datasets import hf_tensors, is_hf_dataset, is_hf_dataset_dict

    if data is None:
        raise DataError(f"{name} is missing; pass a Dataset, a DataLoader or a tuple (X, y)")
    if isinstance(data, TensorData):
        return data
    if is_hf_dataset(data) or is_hf_dataset_dict(data):
        return TensorData(*hf_tensors(data, name))
    if isinstance(data, tuple | list) and len(data) == 2 and not isinstance(data[0], tuple | list):
        x, y = data
        x = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
        y = torch.as_tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y
        return TensorData(x, y)
    if isinstance(data, DataLoader):
        xs, ys = [], []
        for batch in data:
            if not isinstance(batch, tuple | list) or len(batch) < 2:
                raise DataError(f"{name}: each batch must be (inputs, targets, ...); got {type(batch).__name__}")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        if not xs:
            raise DataError(f"{name}: the DataLoader yielded no batches")
        return TensorData(torch.cat(xs), torch.cat(ys))
    if isinstance(data, Dataset):
        try:
            n = len(data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise DataError(f"{name}: the Dataset has no length; wrap it in a DataLoader or pass tensors") from exc
        if n == 0:
            raise DataError(f"{name}: the Dataset is empty")
        items = [data[i] for i in range(n)]
        return TensorData(_stack([it[0] for it in items], "inputs"), _stack([it[1] for it in items], "targets"))
    raise DataError(f"{name}: unsupported type {type(data).__name__}; pass a Dataset, a DataLoader or a tuple (X, y)")


class Batches:
    """Re-iterable mini-batches over a :class:`TensorData`, reshuffled every pass from a seeded generator.

    Indexing whole tensors is much faster than collating single examples through a ``DataLoader``.
    """

    def __init__(
        self,
        data: TensorData,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        self.data = data
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._gen = torch.Generator()
        self._gen.manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.data.x[idx], self.data.y[idx]


class Cycle:
    """An endless stream of batches from a re-iterable stream such as :class:`Batches`, for pairing a small set
    with a big one: each wrap starts a new pass (a seeded :class:`Batches` reshuffles)."""

    def __init__(self, batches: Iterable) -> None:
        self.batches = batches
        self._it: Iterator | None = None

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._it is None:
            self._it = iter(self.batches)
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.batches)
            return next(self._it)


class PairedBatches:
    """One pass over ``main``, each batch followed by the next batch of ``other``, cycled: yields
    ``(*main_batch, *other_batch)`` (``(x_r, y_r, x_f, y_f)`` for two :class:`Batches`).

    ``restart_each_pass=True`` starts the cycle over ``other`` afresh on every pass over ``main``, as
    ``zip(loader, itertools.cycle(other_loader))`` re-created every epoch; within a pass each wrap of ``other``
    is a new pass of it (a new shuffle, where ``itertools.cycle`` would replay its first order). With ``False``
    the cycle carries on across passes: ``other`` is one endless stream. :meth:`pass_examples` counts the
    examples of one pass, both streams, the short last batch of ``other`` as it is (counted from the start of
    the cycle, so exact for every pass when it restarts)."""

    def __init__(self, main: Iterable, other: Iterable, *, restart_each_pass: bool) -> None:
        self.main, self.other = main, other
        self.restart_each_pass = restart_each_pass
        self._cycle = Cycle(other)

    def __len__(self) -> int:
        return len(self.main)  # type: ignore[arg-type]

    def pass_examples(self) -> int:
        main, other = self.main, self.other
        n_main = min(len(main.data), len(main) * main.batch_size)  # type: ignore[attr-defined,arg-type]
        n_o, bs = len(other.data), other.batch_size  # type: ignore[attr-defined]
        sizes = [min(bs, n_o - i * bs) for i in range(len(other))]  # type: ignore[arg-type]
        cycles, rest = divmod(len(self), len(sizes))
        return n_main + cycles * sum(sizes) + sum(sizes[:rest])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        cycle = Cycle(self.other) if self.restart_each_pass else self._cycle
        for batch in self.main:
            yield (*batch, *cycle.next())
