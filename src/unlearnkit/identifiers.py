"""Identifiers a user passes (request ids, run names, concept names) are names, never paths.

:func:`check_identifier` accepts 1–128 characters from ``[A-Za-z0-9._-]``, starting with a letter or a
digit, so an identifier can contain no path separator, no ``..`` component, no leading dot (a hidden file)
and no control or shell character. Every command validates its identifiers with it *before* changing any
state. :func:`file_name` turns an identifier into a file name that cannot leave its folder even if a caller
skipped the check: the checked identifier itself, or a SHA-256 name for anything else.
"""

from __future__ import annotations

import hashlib
import re

from .errors import ConfigError

MAX_LENGTH = 128
PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a safe identifier (see the module docstring)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_LENGTH
        and PATTERN.fullmatch(value) is not None
        and ".." not in value
    )


def check_identifier(value: object, what: str = "identifier") -> str:
    """Return ``value`` when it is a safe identifier; raise a one-line :class:`ConfigError` naming ``what``
    (e.g. ``"request id"``) and the rule otherwise."""
    if is_identifier(value):
        return str(value)
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    length = f" ({len(value)} characters)" if isinstance(value, str) and len(value) > MAX_LENGTH else ""
    raise ConfigError(
        f"{what} {shown}{length} is not allowed: use 1-{MAX_LENGTH} letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, without '..'"
    )


def file_name(value: str, suffix: str = "") -> str:
    """A file name for identifier ``value``: ``value + suffix`` when it is a safe identifier, otherwise the
    SHA-256 of ``value`` (hex) + ``suffix``; never a path."""
    stem = value if is_identifier(value) else hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return stem + suffix
