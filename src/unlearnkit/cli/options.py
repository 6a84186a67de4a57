"""Argument helpers shared by command modules."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import ConfigError


def parse_value(text: str) -> Any:
    """``"0.1"`` → 0.1, ``"true"`` → True, ``"[1,2]"`` → [1, 2]; anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_hparams(items: list[str] | None, *, nested: bool) -> dict[str, Any]:
    """``["lr=0.1"]`` → ``{"lr": 0.1}``; with ``nested``, ``["salun.lr=0.1"]`` → ``{"salun": {"lr": 0.1}}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"bad --hp {item!r}; write NAME=VALUE" + (" as METHOD.NAME=VALUE" if nested else ""))
        key, value = item.split("=", 1)
        if nested:
            if "." not in key:
                raise ConfigError(f"bad --hp {item!r}; name the method: METHOD.NAME=VALUE (e.g. salun.lr=0.02)")
            method, key = key.split(".", 1)
            out.setdefault(method, {})[key] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
