"""One exception family for the whole project.

Every error raised on purpose by unlearnkit derives from :class:`UnlearnkitError`, so callers can catch
one type. Messages say what was wrong *and* how to fix it.
"""

from __future__ import annotations

import errno
import re


class UnlearnkitError(Exception):
    """Base class of every error unlearnkit raises on purpose."""


class ConfigError(UnlearnkitError, ValueError):
    """A hyper-parameter, option or argument is unknown or out of range."""


class DataError(UnlearnkitError, ValueError):
    """A dataset could not be found, read or validated."""


class ForgetSpecError(UnlearnkitError, ValueError):
    """A forget-set specification is malformed or impossible for the data."""


class ModelError(UnlearnkitError, ValueError):
    """A model is unknown, has the wrong shape, or lacks something a method needs."""


class UnknownModelError(ModelError, ConfigError):
    """A model name that is not registered: a configuration error about a model (caught as either)."""


class CheckpointError(UnlearnkitError, OSError):
    """A checkpoint could not be read or written, or writing would overwrite data."""


class StorageError(CheckpointError):
    """The disk filled up, a quota or a file-size limit was reached while writing (``ENOSPC``, ``EDQUOT``,
    ``EFBIG``); what was being written was not kept."""


class DivergenceError(UnlearnkitError, ArithmeticError):
    """Training diverged: the loss or the weights became non-finite (or exploded); the message names the run,
    the step and a smaller learning rate to try."""


class MissingDependencyError(UnlearnkitError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class ContractError(UnlearnkitError, AssertionError):
    """A method broke the method contract (:func:`unlearnkit.contract.check_method`); the message names the
    method, the rule and what was seen."""


def require(module: str, extra: str):
    """Import an optional dependency lazily, raising a helpful error naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"'{module}' is needed for this feature but is not installed. "
            f"Install it with: pip install 'unlearnkit[{extra}]'"
        ) from exc


#: the ``errno`` values of a full disk, an exhausted quota and a file-size limit (``ulimit -f``)
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def storage_errno(exc: BaseException) -> int | None:
    """The errno of ``exc`` when it says the disk is full or a file-size limit was reached, else None.
    Libraries that write from Rust or C++ (safetensors) raise their own types with ``os error N`` in the text."""
    if isinstance(exc, UnlearnkitError):
        return None
    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        found = re.search(r"os error (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    return code if code in STORAGE_ERRNOS else None


def storage_error(exc: BaseException, path: object) -> StorageError:
    """A one-line :class:`StorageError` for ``exc`` (see :func:`storage_errno`) raised while writing ``path``."""
    import os

    code = storage_errno(exc)
    reason = os.strerror(code) if code is not None else str(exc)
    return StorageError(
        f"could not write {path}: {reason}; free disk space (or raise the file-size limit) and run again — "
        "nothing half-written was kept"
    )
