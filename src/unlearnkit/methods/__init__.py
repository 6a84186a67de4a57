"""Unlearning methods: one file each, one interface (:class:`Method`), one registry."""

from . import (  # noqa: F401  (registration)
    auto,
    bad_teacher,
    be,
    blindspot,
    bs,
    clean_unlearning,
    ft,
    ga,
    gaussian_amnesiac,
    gradient_surgery,
    iu,
    l1_sparse,
    laf,
    neggrad_plus,
    poison,
    prune_then_unlearn,
    retrain,
    rl,
    salun,
    salun_soft,
    scrub,
    ssd,
)
from .base import Method, UnlearnRequest, available_methods, get_method_class, hp, make_method, register
from .context import Outcome, RunContext

__all__ = [
    "Method",
    "Outcome",
    "RunContext",
    "UnlearnRequest",
    "available_methods",
    "get_method_class",
    "hp",
    "make_method",
    "register",
]
