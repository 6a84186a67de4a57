"""Gaps to the retrained reference."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

HEADLINE = ("ua", "ra", "ta", "mia")


def gaps(result: Mapping[str, float], reference: Mapping[str, float], keys: Sequence[str] = HEADLINE) -> dict:
    """|result − reference| per key (keys missing or nan in either are skipped)."""
    out = {}
    for k in keys:
        a, b = result.get(k), reference.get(k)
        if a is None or b is None or math.isnan(a) or math.isnan(b):
            continue
        out[k] = abs(a - b)
    return out


def avg_gap(result: Mapping[str, float], reference: Mapping[str, float], keys: Sequence[str] = HEADLINE) -> float:
    """Avg-Gap: the mean absolute difference to retrain over UA, RA, TA and MIA-efficacy."""
    g = gaps(result, reference, keys)
    return sum(g.values()) / len(g) if g else float("nan")
