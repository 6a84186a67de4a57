"""Choosing O3's detector setting per request from what the request itself allows to measure.

The detector's learning rate and number of epochs decide whether it tells a request's people from other people
asked the same questions, and the right values depend on the model (the published lr 1e-5 × 2 epochs, set for
RoBERTa-large, barely move a model trained from scratch; settings that separate on one tiny model fail on
another). O3 (Gao et al., "Practical Unlearning for Large Language Models"; code GCYZSL/O3-LLM-UNLEARNING,
``ScienceQA_expriment/train_ood.py``) fits its detector on the forget inputs only and keeps a held-out part of
them to calibrate the soft weight. This module measures each candidate setting on that held-out part, without
retain data:

* **positives**: the request's calibration prompts (forget prompts the detector was not trained on);
* **negatives**: every forget question with its names swapped (:func:`entity_swaps`): the capitalised words after
  the first one are replaced by capitalised words of the tokenizer's vocabulary that the request never uses (a
  vocabulary with fewer than :data:`MIN_NAMES` such words: the request's own words reversed, ``Bruno`` →
  ``Onurb``). They keep the request's templates and change who is asked about — the retain questions' situation.

The candidate whose gate score (:meth:`ContrastiveEntropyDetector.closeness`) ranks the positives above the
negatives best (AUROC; ties to the earlier candidate) is kept. The selection is ours, not the reference's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from ...audit.roc import roc_auc
from ...errors import DataError
from ..encode import prompt_text
from .ood import ContrastiveEntropyDetector, DetectorConfig, parse_search

_CAPITALISED = re.compile(r"\b[A-Z][a-z]+(?:[-'][A-Za-z]+)*\b")
_VOCAB_WORD = re.compile(r"^[A-Z][a-z]{2,}$")
#: fewer capitalised vocabulary words than this: swap in reversed request words instead
MIN_NAMES = 10


def vocabulary_names(tokenizer, exclude: Sequence[str] = ()) -> list[str]:
    """Capitalised whole words of the tokenizer's vocabulary (at least 3 letters), minus ``exclude``, sorted."""
    banned = set(exclude)
    words = set()
    for token in tokenizer.get_vocab():
        word = tokenizer.convert_tokens_to_string([token]).strip()
        if _VOCAB_WORD.match(word) and word not in banned:
            words.add(word)
    return sorted(words)


def entity_swaps(questions: Sequence[str], names: Sequence[str], seed: int = 0) -> list[str]:
    """Each question with every capitalised word after its first word replaced by a random word of ``names`` (the
    same word for repeated occurrences); questions without such a word are left out."""
    rng = np.random.default_rng(seed)
    if not names:
        return []
    out = []
    for q in questions:
        spans = [m for m in _CAPITALISED.finditer(q) if m.start() > 0 and q[: m.start()].strip()]
        if not spans:
            continue
        swap: dict[str, str] = {}
        parts, last = [], 0
        for m in spans:
            word = m.group(0)
            swap.setdefault(word, names[int(rng.integers(len(names)))])
            parts += [q[last : m.start()], swap[word]]
            last = m.end()
        out.append("".join(parts) + q[last:])
    return out


@dataclass
class DetectorChoice:
    """The chosen candidate (``lr``, ``epochs``), its separation AUROC and every candidate's AUROC."""

    lr: float
    epochs: int
    auroc: float
    tried: list[tuple[float, int, float]]


def select_detector(
    base: nn.Module,
    tokenizer,
    questions: Sequence[str],
    cfg: DetectorConfig,
    *,
    seed: int = 0,
    device=None,
) -> tuple[ContrastiveEntropyDetector, DetectorChoice]:
    """Fit one detector per candidate of ``cfg.search`` on the request's ``questions`` (their prompts) and keep
    the one whose score best separates the calibration prompts from the name-swapped questions; with an empty
    ``cfg.search`` the detector of ``cfg.lr`` × ``cfg.epochs`` (AUROC still measured when it can be)."""
    prompts = [prompt_text(q, tokenizer) for q in questions]
    own = {w for q in questions for w in _CAPITALISED.findall(q)}
    names = vocabulary_names(tokenizer, exclude=sorted(own))
    if len(names) < MIN_NAMES:
        names = sorted({w[::-1].capitalize() for w in own} - own)
    negatives = [prompt_text(q, tokenizer) for q in entity_swaps(questions, names, seed=seed)]
    candidates = parse_search(cfg.search) or [(cfg.lr, cfg.epochs)]
    best: tuple[float, ContrastiveEntropyDetector, float, int] | None = None
    tried = []
    for lr, epochs in candidates:
        det = ContrastiveEntropyDetector(base, tokenizer, replace(cfg, lr=lr, epochs=epochs, search=""), device=device)
        det.fit(prompts, seed=seed)
        score = roc_auc(det.closeness(det.calibration), det.closeness(negatives)) if negatives else float("nan")
        tried.append((lr, epochs, score))
        if best is None or score > best[0]:
            best = (score, det, lr, epochs)
    if best is None:  # pragma: no cover - parse_search never returns an empty list here
        raise DataError("no detector candidate was fitted")
    score, det, lr, epochs = best
    return det, DetectorChoice(lr, epochs, score, tried)


__all__ = ["MIN_NAMES", "DetectorChoice", "entity_swaps", "parse_search", "select_detector", "vocabulary_names"]
