"""Hugging Face ``datasets`` objects as inputs: a ``datasets.Dataset`` (or a ``DatasetDict`` holding one split)
becomes tensors for classifiers, QA or text records for language models, and images for text-to-image models
and GANs. ``datasets`` is never imported here unless the user passed one of its objects.

Columns are found by their usual names: inputs in :data:`INPUT_COLUMNS` (``image``, ``img``, ``pixel_values``…),
targets in :data:`LABEL_COLUMNS` (``label``, ``labels``…); rename others with ``ds.rename_columns``. An image
column (the ``datasets.Image`` feature, decoded to height × width × channels bytes) becomes float
``(N, C, H, W)`` in [0, 1]; any other column is taken as the array it holds.

Reference: the ``Dataset`` / ``DatasetDict`` interfaces of huggingface/datasets
(``src/datasets/arrow_dataset.py``, ``src/datasets/dataset_dict.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import DataError

#: input columns, the first present is used
INPUT_COLUMNS = ("image", "img", "pixel_values", "x", "input", "inputs", "features")
#: target columns, the first present is used
LABEL_COLUMNS = ("label", "labels", "fine_label", "y", "target", "targets")


def is_hf_dataset(obj: object) -> bool:
    """A ``datasets.Dataset`` (detected without importing ``datasets``)."""
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "column_names") and hasattr(obj, "features")


def is_hf_dataset_dict(obj: object) -> bool:
    """A ``datasets.DatasetDict`` (splits by name)."""
    return type(obj).__module__.startswith("datasets.") and type(obj).__name__ == "DatasetDict"


def one_split(obj: Any, name: str) -> Any:
    """The ``Dataset`` in ``obj``: itself, or the only split of a ``DatasetDict``; a dict of several splits is a
    :class:`~unlearnkit.errors.DataError` naming them."""
    if not is_hf_dataset_dict(obj):
        return obj
    splits = list(obj)
    if len(splits) != 1:
        shown = ", ".join(repr(s) for s in splits) or "none"
        raise DataError(f"{name} is a DatasetDict with splits {shown}; pass one of them, e.g. {name}=dd[{splits[0]!r}]")
    return obj[splits[0]]


def _column(ds: Any, candidates: tuple[str, ...], what: str, name: str) -> str:
    for col in candidates:
        if col in ds.column_names:
            return col
    raise DataError(
        f"{name}: the dataset has no {what} column (looked for {', '.join(candidates)}; it has "
        f"{', '.join(ds.column_names)}); rename yours with ds.rename_columns({{'yours': '{candidates[0]}'}})"
    )


def _is_image_feature(ds: Any, col: str) -> bool:
    return type(ds.features.get(col)).__name__ == "Image"


def _array(ds: Any, col: str, name: str) -> np.ndarray:
    values = ds.with_format("numpy")[:][col]
    arr = np.asarray(values)
    if arr.dtype == object:
        raise DataError(
            f"{name}: the {col!r} values differ in shape; give every example the same size (e.g. resize the "
            "images with ds.map) before unlearning"
        )
    return arr


def image_tensor(ds: Any, col: str, name: str) -> torch.Tensor:
    """Column ``col`` as a tensor; an image column as float ``(N, C, H, W)`` in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(_array(ds, col, name)))
    if not _is_image_feature(ds, col):
        return x
    x = x.float() / 255.0
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def hf_tensors(obj: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` of a ``Dataset`` / one-split ``DatasetDict`` (see the module docstring)."""
    ds = one_split(obj, name)
    if len(ds) == 0:
        raise DataError(f"{name}: the dataset is empty")
    x = image_tensor(ds, _column(ds, INPUT_COLUMNS, "input", name), name)
    y = torch.from_numpy(np.ascontiguousarray(_array(ds, _column(ds, LABEL_COLUMNS, "label", name), name)))
    return x, y


def hf_images(obj: Any, name: str) -> torch.Tensor:
    """The images of a ``Dataset`` / one-split ``DatasetDict``, float ``(N, C, H, W)`` in [0, 1]."""
    ds = one_split(obj, name)
    if len(ds) == 0:
        raise DataError(f"{name}: the dataset is empty")
    return image_tensor(ds, _column(ds, INPUT_COLUMNS, "image", name), name)


def class_names(obj: Any, name: str) -> list[str] | None:
    """The class names of the label column when it is a ``ClassLabel`` feature, else None."""
    ds = one_split(obj, name)
    feature = ds.features.get(_column(ds, LABEL_COLUMNS, "label", name))
    names = getattr(feature, "names", None)
    return list(names) if names else None


def records(obj: Any, name: str) -> list[Any]:
    """The rows of a ``Dataset`` / one-split ``DatasetDict`` as dicts, or the items of a torch ``Dataset``
    (dicts or strings), for the language-model readers."""
    if is_hf_dataset(obj) or is_hf_dataset_dict(obj):
        return [dict(row) for row in one_split(obj, name)]
    try:
        n = len(obj)
    except TypeError as exc:
        raise DataError(f"{name}: the dataset has no length; pass a list of records") from exc
    return [obj[i] for i in range(n)]
