"""Intrinsic metrics beside the behavioural ones: what ``lm-eval --intrinsic`` and ``lm-bench --intrinsic`` call.

The concept vectors of the forget set (one concept per forgotten person) are located once in the model *before*
unlearning; each evaluated model is then scored by :func:`unlearnkit.lm.concepts.intrinsic.concept_drift`.
"""

from __future__ import annotations

from torch import nn

from ..data import LMSplit
from .intrinsic import concept_drift
from .locate import Concept, person_concepts

#: top-k of the projected-token overlap: the reference's 200 (of a 32,000-token vocabulary), at most a tenth of a
#: smaller vocabulary (the tiny model's 2,048 → 200; a 400-token test vocabulary → 40)
REFERENCE_TOP_K = 200

INTRINSIC_COLUMNS = (
    ("cv_cosine", "CV cosine"),
    ("cv_norm_change", "CV norm Δ"),
    ("cv_jaccard", "CV top-k Jaccard"),
    ("cv_concept_token_rate", "CV concept tokens"),
)


def top_k_for(model: nn.Module) -> int:
    vocab = int(model.get_output_embeddings().weight.shape[0])
    return max(1, min(REFERENCE_TOP_K, vocab // 10))


def split_concepts(original: nn.Module, tokenizer, split: LMSplit, *, top_n: int = 8, rank: str = "attribution"):
    """The concepts of ``split``'s forget QA located in ``original`` (background: its retain QA)."""
    return person_concepts(original, tokenizer, split.forget, split.retain, top_n=top_n, rank=rank)


def intrinsic_row(original: nn.Module, model: nn.Module, concepts: list[Concept], k: int | None = None) -> dict:
    """``cv_*`` metrics of ``model`` against ``original`` on ``concepts`` plus how many vectors were tracked."""
    out = concept_drift(original, model, concepts, k or top_k_for(original))
    out["cv_n_vectors"] = float(sum(len(c.vectors) for c in concepts))
    return out


def intrinsic_metrics(
    original: nn.Module, model: nn.Module, tokenizer, split: LMSplit, *, top_n: int = 8, rank: str = "attribution"
) -> dict:
    """Locate the forget concepts in ``original`` and report how far ``model`` moved them."""
    return intrinsic_row(original, model, split_concepts(original, tokenizer, split, top_n=top_n, rank=rank))
