"""Concept-vector ablation: locate the forget concepts' MLP value vectors and ablate them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from ...engine import Hook, StepContext
from ...errors import ConfigError
from ...methods.base import hp, register
from ...methods.context import RunContext
from ..concepts.ablate import MODES, ablate_vectors
from ..concepts.locate import (
    RANKS,
    Concept,
    concept_token_ids,
    locate_concept,
    out_projections,
    person_concepts,
    specific_tokens,
    value_rows,
)
from ..losses import nll
from .base import LMMethod, LMRequest

IGNORE = -100


class KeepOnlyVectors(Hook):
    """After every step, put back every entry of the trained output projections except the chosen value vectors
    (gradients of the other entries are zeroed too), so only the concept vectors move; with ``max_norm_ratio``,
    each chosen vector is then scaled back to at most that multiple of its norm at the start."""

    def __init__(
        self, modules: list[nn.Module], masks: list[torch.Tensor], max_norm_ratio: float | None = None
    ) -> None:
        self.modules, self.masks, self.ratio = modules, masks, max_norm_ratio
        self.saved = [m.weight.detach().clone() for m in modules]
        self.rows = [value_rows(mask, m).amax(1).nonzero().flatten() for m, mask in zip(modules, masks)]
        self.limits = [value_rows(w, m)[i].norm(dim=1) for m, w, i in zip(modules, self.saved, self.rows)]

    def after_backward(self, ctx: StepContext) -> None:
        for m, mask in zip(self.modules, self.masks):
            if m.weight.grad is not None:
                m.weight.grad.mul_(mask)

    def after_step(self, ctx: StepContext) -> None:
        with torch.no_grad():
            for m, mask, w0 in zip(self.modules, self.masks, self.saved):
                m.weight.copy_(torch.where(mask.bool(), m.weight, w0))
            if self.ratio is None:
                return
            for m, idx, limit in zip(self.modules, self.rows, self.limits):
                view = value_rows(m.weight, m)
                v = view[idx]
                scale = (self.ratio * limit / v.norm(dim=1).clamp(min=1e-12)).clamp(max=1.0)
                view[idx] = v * scale[:, None]


def label_concept(model: nn.Module, request: LMRequest, top_n: int) -> Concept:
    """Without QA records: one concept for the whole forget set, its tokens those of the forget labels far more
    frequent than in the retain labels (:func:`specific_tokens`), located by vocabulary projection."""

    def counts(labels: torch.Tensor) -> Counter:
        return Counter(labels[labels != IGNORE].tolist())

    ids = specific_tokens(counts(request.forget.labels), counts(request.retain.labels))
    special = set(getattr(request.tokenizer, "all_special_ids", []) or [])
    ids = [t for t in ids if t not in special]
    if not ids:
        raise ConfigError("concept-ablation: no forget token is rarer in the retain data; pass concept='word,word'")
    return locate_concept(model, request.tokenizer, token_ids=ids, name="forget set", top_n=top_n)


@register
@dataclass(kw_only=True, frozen=True)
class ConceptAblation(LMMethod):
    """Concept-vector ablation (Hong et al., "Intrinsic Evaluation of Unlearning Using Parametric Knowledge
    Traces", 2024; code yihuaihong/ConceptVectors ``forget.py``, ``ft_type == 'Needle'``).

    Locates ``top_n`` value vectors per forgotten person (:func:`unlearnkit.lm.concepts.person_concepts`;
    ``rank="projection"`` is the paper's vocabulary-projection criterion, ``"attribution"`` ours, see
    :mod:`unlearnkit.lm.concepts.locate`), or of the words in ``concept``, then:

    - ``mode="needle"`` (the paper's ablation baseline, Needle): Gaussian noise of std ``noise_std`` (0.1) on each
      vector, then gradient ascent on the forget answers that trains only those vectors (the reference masks the
      gradient of ``down_proj.weight`` to the chosen column and trains with lr 1e-1…5e-1). Deviation: the other
      entries of the projection are restored after each step, so AdamW's weight decay does not shrink them;
      Second deviation (default ``max_norm_ratio=1``): after every step each vector is scaled back to at most its
      norm before the ascent. Unbounded ascent at lr 0.1 grows the vectors until they dominate the MLP output for
      every input, which collapses retain accuracy; bounded, the ascent can only turn the vectors away from the
      forget answers (``max_norm_ratio=0`` switches the bound off, the reference's behaviour). Third: the default
      lr is 0.03, below the reference's 0.1–0.5, which collapse retain accuracy on the tiny benchmark
      (``benchmarks/lm_defaults.py``, ``benchmarks/RESULTS.md``);
    - ``mode="noise"``: the noise only (the paper's causal-validation edit, ``add_noise``);
    - ``mode="zero"`` / ``"project"`` (ours): set the vectors to 0 / remove from them the span of the concept tokens'
      output embeddings (:func:`unlearnkit.lm.concepts.project_out_concept`).

    ``epochs``/``lr`` only matter for ``needle``; ``lora`` is not supported (the edit is on single columns)."""

    name = "concept-ablation"

    mode: str = hp("needle", choices=(*MODES, "needle"), doc="how the located vectors are ablated")
    rank: str = hp("attribution", choices=RANKS, doc="how vectors are located (projection: the paper's)")
    top_n: int = hp(8, low=1, doc="value vectors per concept (per forgotten person)")
    noise_std: float = hp(0.1, low=0, doc="std of the Gaussian noise added to each vector (noise, needle)")
    concept: str = hp("", doc="comma-separated words naming the concept; empty: from the forget QA")
    epochs: int = hp(5, low=1)
    lr: float = hp(0.03, low=0, low_open=True, doc="needle's learning rate (the reference: 1e-1 to 5e-1)")
    max_norm_ratio: float = hp(1.0, low=0, doc="needle: keep each vector's norm <= this x its start (0: no bound)")

    def check(self, request: LMRequest) -> None:  # type: ignore[override]
        super().check(request)
        if self.lora:
            raise ConfigError("concept-ablation edits single value vectors; run it with lora=False")

    def concepts(self, model: nn.Module, request: LMRequest) -> list[Concept]:
        """The concepts to ablate, located in ``model``."""
        if self.concept.strip():
            terms = [t for t in self.concept.split(",") if t.strip()]
            ids = concept_token_ids(request.tokenizer, terms)
            return [locate_concept(model, request.tokenizer, token_ids=ids, name=self.concept, top_n=self.top_n)]
        if request.forget_records:
            return person_concepts(
                model,
                request.tokenizer,
                request.forget_records,
                request.retain_records,
                top_n=self.top_n,
                rank=self.rank,
            )
        return [label_concept(model, request, self.top_n)]

    def unlearn(self, model: nn.Module, request: LMRequest, ctx: RunContext) -> None:
        concepts = self.concepts(model, request)
        mode = "noise" if self.mode == "needle" else self.mode
        for k, c in enumerate(concepts):
            ablate_vectors(
                model, c.locations(), mode=mode, noise_std=self.noise_std, token_ids=c.token_ids, seed=self.seed + k
            )
        if self.mode == "needle":
            self.needle(ctx, model, request, concepts)

    def needle(self, ctx: RunContext, model: nn.Module, request: LMRequest, concepts: list[Concept]) -> None:
        """Gradient ascent on the forget answers through the engine, training only the located vectors."""
        projs = out_projections(model)
        layers = sorted({v.layer for c in concepts for v in c.vectors})
        modules, masks = [], []
        for ly in layers:
            m = projs[ly]
            mask = torch.zeros_like(m.weight)
            view = value_rows(mask, m)
            for c in concepts:
                for v in c.vectors:
                    if v.layer == ly:
                        view[v.index] = 1.0
            modules.append(m)
            masks.append(mask)
        params = [m.weight for m in modules]
        chosen = {id(p) for p in params}
        frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
        for p in frozen:
            p.requires_grad_(False)
        try:
            hook = KeepOnlyVectors(modules, masks, self.max_norm_ratio or None)
            batches = self.forget_batches(request)
            self.fit_loss(ctx, model, request, batches, lambda m, b: -nll(m, b), params=params, hooks=[hook])
        finally:
            for p in frozen:
                p.requires_grad_(True)
