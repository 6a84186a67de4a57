"""Datasets: a registry (:func:`load_dataset`), readers for IDX and CIFAR files, and tensor helpers."""

from . import regression  # noqa: F401,E402  (registers diabetes)
from .registry import DatasetBundle, available_datasets, load_dataset, register_dataset
from .tensors import Batches, TensorData, as_tensor_data

__all__ = [
    "Batches",
    "DatasetBundle",
    "TensorData",
    "as_tensor_data",
    "available_datasets",
    "load_dataset",
    "register_dataset",
]
