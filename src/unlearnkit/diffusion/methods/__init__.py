"""Concept-erasure methods for text-to-image models (domain ``"diffusion"``), one file each."""

from . import advunlearn, concept_correction, esd, ga, rl, salun, sfd  # noqa: F401  (registration)
from .common import DiffusionMethod

__all__ = ["DiffusionMethod"]
