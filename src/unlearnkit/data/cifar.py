"""Reader for the CIFAR-10 / CIFAR-100 "python version" pickle batches in a folder the user gives."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError

_LAYOUT = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "labels": b"labels",
        "meta": "batches.meta",
        "names": b"label_names",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "labels": b"fine_labels",
        "meta": "meta",
        "names": b"fine_label_names",
    },
}


#: the only globals a CIFAR batch pickle refers to: numpy arrays (and their dtypes and scalars), and the byte
#: strings Python 3 pickles at protocol 2; anything else (``os.system``, ``builtins.eval``, ...) is refused
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only the plain containers, numbers, strings and numpy arrays CIFAR batches
    hold, so a crafted file cannot run code while it is read."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"it refers to {module}.{name}, which CIFAR batches never contain (refused: it could run code)"
        )


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = _BatchUnpickler(fh, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(
            f"could not read CIFAR batch {path}: {exc}; use the original 'python version' files of CIFAR"
        ) from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a {type(data).__name__}, not a CIFAR batch dict; is it a CIFAR file?")
    return data


def find_cifar_dir(name: str, data_dir: str | Path | None) -> Path:
    if name not in _LAYOUT:
        raise DataError(f"unknown CIFAR variant {name!r}; use cifar10 or cifar100")
    if data_dir is None:
        raise DataError(f"{name} needs --data-dir pointing at the extracted '{_LAYOUT[name]['folder']}' folder")
    base = Path(data_dir)
    layout = _LAYOUT[name]
    for d in (base, base / layout["folder"], base / name / layout["folder"]):
        if all((d / f).is_file() for f in layout["train"] + layout["test"]):
            return d
    raise DataError(
        f"{name}: batch files {', '.join(layout['train'] + layout['test'])} not found under {base}; download "
        f"the python version of {name.upper()} and extract it there (the '{layout['folder']}' folder)"
    )


def read_cifar(name: str, data_dir: str | Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    """``(x_train, y_train, x_test, y_test, class_names)`` with images as uint8 ``N×3×32×32``."""
    folder = find_cifar_dir(name, data_dir)
    layout = _LAYOUT[name]

    def load(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            d = _unpickle(folder / f)
            if b"data" not in d or layout["labels"] not in d:
                raise DataError(f"{folder / f} lacks 'data' or '{layout['labels'].decode()}'; is it {name}?")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[layout["labels"]], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = load(layout["train"])
    x_te, y_te = load(layout["test"])
    meta_path = folder / layout["meta"]
    if meta_path.is_file():
        names = [n.decode() for n in _unpickle(meta_path).get(layout["names"], [])]
    else:
        names = []
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    if len(names) != n_classes:
        names = [str(i) for i in range(n_classes)]
    return x_tr, y_tr, x_te, y_te, names


def write_cifar_batch(path: Path, data: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels") -> None:
    """Write a CIFAR-style pickle batch (used to make tiny test fixtures)."""
    with open(path, "wb") as fh:
        pickle.dump({b"data": data.reshape(len(data), -1), label_key: list(map(int, labels))}, fh)
