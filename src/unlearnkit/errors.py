"""One exception family for the whole project.

Every error raised on purpose by unlearnkit derives from :class:`UnlearnkitError`, so callers can catch
one type. Messages say what was wrong *and* how to fix it.
"""

from __future__ import annotations


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


class CheckpointError(UnlearnkitError, OSError):
    """A checkpoint could not be read or written, or writing would overwrite data."""


class DivergenceError(UnlearnkitError, ArithmeticError):
    """Training diverged: the loss or the weights became non-finite (or exploded); the message names the run,
    the step and a smaller learning rate to try."""


class MissingDependencyError(UnlearnkitError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


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
