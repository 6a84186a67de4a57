"""Reading arrays the user passes as files (``.npy``, ``.pt``) without ever running pickled code.

``np.load`` is always called with ``allow_pickle=False`` and ``torch.load`` with ``weights_only=True`` (so an
environment that sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn pickle back on). Empty, object-dtype,
truncated and non-numeric files end in one :class:`~unlearnkit.errors.DataError` line naming the file and
the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError


def read_npy(path: str | Path, *, what: str = "array") -> np.ndarray:
    """A numeric, non-empty array from a ``.npy`` file (never unpickled)."""
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:  # object arrays, truncated data or header
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{p} holds an object array (pickled Python objects), which is never loaded; save the {what} as a "
                "numeric array (np.save(path, x.astype(np.float32)))"
            ) from exc
        raise DataError(f"{p} is not a complete .npy file ({exc}); save the {what} again with np.save") from exc
    except (EOFError, OSError) as exc:
        raise DataError(f"{p} is empty or unreadable ({exc or 'no data'}); save the {what} with np.save") from exc
    if not isinstance(arr, np.ndarray):  # np.load gives an NpzFile for .npz archives
        raise DataError(f"{p} is not a single .npy array; save the {what} with np.save")
    return _checked(arr, p, what)


def read_pt_tensor(path: str | Path, *, what: str = "array") -> np.ndarray:
    """A numeric, non-empty tensor from a ``.pt`` file, loaded with ``weights_only=True`` (as a numpy array)."""
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but plain tensors, RuntimeError/EOFError when damaged
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{p} is not a file of plain tensors torch.load(weights_only=True) can read ({first[:160]}); save "
            f"the {what} with torch.save(tensor, path)"
        ) from exc
    if not isinstance(obj, torch.Tensor):
        raise DataError(f"{p} holds a {type(obj).__name__}, not a tensor; save the {what} with torch.save(x, path)")
    if obj.is_complex() or obj.dtype == torch.bool:
        raise DataError(f"{p} holds a {obj.dtype} tensor, not real numbers; save the {what} as a float tensor")
    return _checked(obj.detach().cpu().float().numpy(), p, what)


def read_array_file(path: str | Path, *, what: str = "array") -> np.ndarray:
    """:func:`read_npy` for ``.npy`` files, :func:`read_pt_tensor` for ``.pt`` files."""
    p = Path(path)
    if p.suffix == ".npy":
        return read_npy(p, what=what)
    if p.suffix == ".pt":
        return read_pt_tensor(p, what=what)
    raise DataError(f"{p} is neither a .npy nor a .pt file; save the {what} with np.save or torch.save")


def _checked(arr: np.ndarray, p: Path, what: str) -> np.ndarray:
    if arr.dtype.kind not in "iuf":
        raise DataError(f"{p} holds a {arr.dtype} array, not numbers; save the {what} as a numeric array")
    if arr.size == 0:
        raise DataError(f"{p} holds an empty array (shape {arr.shape}); save at least one {what} entry")
    if arr.dtype.kind == "f" and not bool(np.isfinite(arr).all()):
        raise DataError(f"{p} holds NaN or infinite values; clean the {what} and save it again")
    return arr
