"""Language-model unlearning methods (domain ``"lm"``): one file each, registered by name."""

from . import concept_ablation, ga, grad_diff, idk_dpo, npo, rmu, simnpo, undial  # noqa: F401  (registration)
from .base import LMMethod, LMRequest

LM_METHODS = ("ga", "grad-diff", "npo", "simnpo", "idk-dpo", "rmu", "undial")

__all__ = ["LM_METHODS", "LMMethod", "LMRequest"]
