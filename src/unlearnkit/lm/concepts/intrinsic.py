"""Intrinsic metric of unlearning: how far each concept vector moved between the original and the unlearned model.

Follows ConceptVectors ``evaluate_llama.py`` with ``evaluate_util.py``: ``cosine_similarity`` (cosine of the
vector before/after, capped at 1), ``norm_distance`` (‖after − before‖₂), ``jaccard_similarity`` (Jaccard index of
the top-k projected token sets, k = 200; before projected through the original's output embedding, after through
the unlearned model's, as ``forget.py::evaluate`` does) and its ``preciser_jaccard`` (the number of concept tokens
in the after top-k over the number in the before top-k; the reference takes the concept tokens from the concept's
Wikipedia page, here they are the concept's own tokens: ``concept_token_rate``). ``norm_change`` (relative change
of ‖v‖) is added. Every function here but :func:`concept_drift` is pure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .locate import Concept, out_projections, top_tokens, unembedding, value_vectors, vocab_projection

INTRINSIC_KEYS = ("cosine", "l2", "norm_change", "jaccard", "concept_token_rate")


@torch.no_grad()
def vector_drift(
    before: torch.Tensor,
    after: torch.Tensor,
    emb_before: torch.Tensor,
    emb_after: torch.Tensor,
    concept_ids: Sequence[int] | None = None,
    k: int = 200,
) -> dict[str, float]:
    """Drift of one value vector: cosine (≤ 1), L2 distance, relative norm change, Jaccard of the top-``k``
    projected tokens and, with ``concept_ids``, the share of concept tokens still in the top ``k``
    (nan when none was there before)."""
    b, a = before.double().flatten(), after.double().flatten()
    nb, na = float(b.norm()), float(a.norm())
    cos = float(torch.nn.functional.cosine_similarity(b, a, dim=0)) if nb > 0 and na > 0 else 0.0
    tb = set(top_tokens(vocab_projection(b[None], emb_before), k)[0].tolist())
    ta = set(top_tokens(vocab_projection(a[None], emb_after), k)[0].tolist())
    out = {
        "cosine": min(cos, 1.0),
        "l2": float((a - b).norm()),
        "norm_change": (na - nb) / nb if nb > 0 else float("nan"),
        "jaccard": len(tb & ta) / len(tb | ta),
        "concept_token_rate": float("nan"),
    }
    if concept_ids:
        c = set(int(t) for t in concept_ids)
        n_before = len(tb & c)
        out["concept_token_rate"] = len(ta & c) / n_before if n_before else float("nan")
    return out


def mean_drift(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each key over vectors, ignoring nan."""
    out = {}
    for key in INTRINSIC_KEYS:
        vals = [r[key] for r in rows if not np.isnan(r[key])]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out


@torch.no_grad()
def concept_drift(
    original: nn.Module, unlearned: nn.Module, concepts: Sequence[Concept], k: int = 200
) -> dict[str, float]:
    """Mean drift of every located vector of ``concepts`` between ``original`` and ``unlearned`` (the same
    architecture), keys ``cv_*``; ``cv_all_cosine`` is the mean cosine of *every* value vector of the layers
    holding concept vectors, the background the concept vectors' cosine is read against."""
    p0, p1 = out_projections(original), out_projections(unlearned)
    e0, e1 = unembedding(original).detach().cpu(), unembedding(unlearned).detach().cpu()
    rows = []
    for c in concepts:
        for v in c.vectors:
            before = value_vectors(p0[v.layer])[v.index].detach().cpu()
            after = value_vectors(p1[v.layer])[v.index].detach().cpu()
            rows.append(vector_drift(before, after, e0, e1, c.token_ids, k))
    out = {f"cv_{key}": val for key, val in mean_drift(rows).items()}
    layers = sorted({v.layer for c in concepts for v in c.vectors})
    cos = [
        torch.nn.functional.cosine_similarity(
            value_vectors(p0[ly]).detach().cpu().double(), value_vectors(p1[ly]).detach().cpu().double(), dim=1
        )
        for ly in layers
    ]
    out["cv_all_cosine"] = float(torch.cat(cos).mean()) if cos else float("nan")
    return out
