"""Unlearning methods: one file each, one interface (:class:`Method`), one registry."""

from . import ft, ga, l1_sparse, retrain, rl, salun  # noqa: F401  (registration)
from .base import Method, UnlearnRequest, available_methods, get_method_class, hp, make_method, register

__all__ = ["Method", "UnlearnRequest", "available_methods", "get_method_class", "hp", "make_method", "register"]
