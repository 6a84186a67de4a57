"""Edit located concept vectors in place: Gaussian noise (the paper's), zeroing, or projection.

``noise`` follows ConceptVectors ``forget.py`` / ``Concept_Validation_Experiments.ipynb`` (``add_noise``: add
N(0, std²) noise, std 0.1, to ``down_proj.weight[:, dim]``). ``zero`` and ``project`` are ours: ``zero`` sets the
vector to 0; ``project`` removes from it the span of the concept tokens' output embeddings, so that its vocabulary
projection gives every concept token exactly 0 while the rest of the vector is kept (named
:func:`project_out_concept`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ConfigError
from .locate import out_projections, unembedding, value_vectors

MODES = ("noise", "zero", "project")


@torch.no_grad()
def project_out_concept(v: torch.Tensor, concept_emb: torch.Tensor) -> torch.Tensor:
    """``v`` minus its orthogonal projection onto the row span of ``concept_emb`` (n_tokens, d): afterwards
    ``concept_emb @ result == 0`` (up to rounding)."""
    basis = torch.linalg.qr(concept_emb.double().T).Q  # (d, r) orthonormal columns spanning the rows
    vd = v.double()
    return (vd - basis @ (basis.T @ vd)).to(v.dtype)


@torch.no_grad()
def ablate_vectors(
    model: nn.Module,
    locations: Sequence[tuple[int, int]],
    *,
    mode: str = "noise",
    noise_std: float = 0.1,
    token_ids: Sequence[int] | None = None,
    seed: int = 0,
) -> nn.Module:
    """Edit the value vectors at ``locations`` ((layer, index) pairs) of ``model`` in place and return it."""
    if mode not in MODES:
        raise ConfigError(f"unknown ablation mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "project" and not token_ids:
        raise ConfigError("mode='project' needs the concept's token_ids")
    projs = out_projections(model)
    g = torch.Generator().manual_seed(seed)
    concept_emb = unembedding(model)[list(token_ids)].detach() if mode == "project" else None
    for layer, index in locations:
        rows = value_vectors(projs[layer])
        v = rows[index]
        if mode == "noise":
            v.add_(torch.normal(0.0, noise_std, size=tuple(v.shape), generator=g).to(v.device, v.dtype))
        elif mode == "zero":
            v.zero_()
        else:
            v.copy_(project_out_concept(v, concept_emb.to(v.device)))
    return model
