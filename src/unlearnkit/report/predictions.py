"""Per-example outputs of a bench run's models, saved next to results.json for the report."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from torch import nn

from ..checkpoint import atomic_write_bytes
from ..data.tensors import TensorData
from ..errors import DataError
from ..metrics.predict import predict_outputs

PREDICTIONS = "predictions.npz"


def write_predictions(
    out_dir: str | Path,
    models: dict[str, nn.Module],
    forget: TensorData,
    retain: TensorData,
    test: TensorData,
    *,
    class_names: list[str] | None = None,
    max_retain: int = 2000,
) -> Path:
    """Write ``predictions.npz``: labels of each split and every model's logits on forget, test and (the first
    ``max_retain`` of) retain. Names are stored in ``models``."""
    retain = retain.subset(np.arange(min(len(retain), max_retain)))
    arrays: dict[str, np.ndarray] = {
        "models": np.array(list(models), dtype=str),
        "y_forget": forget.y.numpy(),
        "y_retain": retain.y.numpy(),
        "y_test": test.y.numpy(),
        "class_names": np.array(list(class_names or []), dtype=str),
    }
    for name, model in models.items():
        for split, data in (("forget", forget), ("retain", retain), ("test", test)):
            arrays[f"{name}/{split}"] = predict_outputs(model, data).numpy().astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = Path(out_dir) / PREDICTIONS
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_predictions(run_dir: str | Path) -> dict[str, dict[str, np.ndarray]] | None:
    """``{model: {"forget": logits, "retain": …, "test": …}, "_labels": {...}, "_names": {...}}``, or None."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, dict[str, np.ndarray]] = {
                "_labels": {s: z[f"y_{s}"] for s in ("forget", "retain", "test")},
                "_names": {"class_names": z["class_names"]} if "class_names" in z.files else {},
            }
            for name in z["models"].tolist():
                out[name] = {s: z[f"{name}/{s}"] for s in ("forget", "retain", "test")}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"could not read {path}: {exc}; rerun bench with save_predictions=True") from exc
    return out
