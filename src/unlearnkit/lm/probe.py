"""The held-out target of language-model unlearning: stop when the forget answers are as likely as never-seen
people's, keep the best state, never hand back a model whose retained answers collapsed.

A retain-only model has never seen the forget people, so their answers are to it what a never-seen person's
answers are to the original: :class:`LMProbe` (an engine hook, :class:`unlearnkit.probe.ProbeHook`) measures
every few steps the mean answer probability P(a|q)^(1/|a|) (teacher-forced, TOFU's "probability"; no
generation) of the current model on three fixed small samples: forget rows, held-out rows (people the model never
saw) and retain rows. Targets (:data:`LM_TARGET_SOURCES`):

* ``"heldout"``: the held-out rows' probability under the current model (the bundled benchmark's never-trained
  people, or the user's ``heldout=`` rows);
* ``"perturbed"`` (weaker, without held-out rows and only when asked for: ``probe=True``): the forget questions
  with their perturbed (wrong) answers, TOFU's truth-ratio idea: a model that never learned the fact finds the
  true answer no likelier than a wrong one of the same form. Wrong answers are values that other trained people
  hold, so this level sits above a never-seen person's and forgetting stops earlier.

The target is reached when the forget probability is at most the target level plus ``tolerance``: one standard
error of the difference of the two sample means (at least :data:`MIN_TOLERANCE`), i.e. the probes cannot tell the
forget rows from the never-seen ones. The retain side is measured on a larger sample (128 rows) by two numbers:
the share of rows whose answer the model reproduces token by token under teacher forcing (its greedy predictions;
this tracks QA accuracy) and the answer probability; the drop is the larger relative fall of the two below the
original's, in percent. The distance (percentage points) is ``|forget − target|`` plus the drop; a state whose
drop exceeds ``collapse_tolerance`` (15 %: about two standard errors of the match rate on 128 rows, and inside
the 20 % that a retain accuracy ≥ 0.8 × the original's allows) is never kept, and past ``rollback_drop`` (30 %, at
any check: the methods' retain term runs in the same step) the run rolls back to the best state with half the
learning rate, and stops after ``max_rollbacks``.

Reference: early stopping with model selection on a validation signal (Prechelt, "Early Stopping — But When?",
1998), shared with the classifiers' probe (:mod:`unlearnkit.probe`); the answer probability and the truth-ratio
comparison of perturbed answers are TOFU's (Maini et al., 2024; open-unlearning
``src/evals/metrics/memorization.py``, ``probability`` and ``truth_ratio``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine import StepContext
from ..errors import ConfigError
from ..probe import CHECKS, Check, ProbeHook
from .encode import DEFAULT_MAX_LENGTH, LMData, encode_qa
from .losses import shifted_logits, token_logprobs
from .positions import check_width

#: rows per probe sample (forget, held-out; the retain sample has four times as many)
LM_PROBE_SIZE = 32
#: the reach tolerance never goes below this many percentage points of answer probability
MIN_TOLERANCE = 1.0
#: a state whose retain greedy-match rate fell more than this % below the original's is never kept
LM_COLLAPSE_TOLERANCE = 15.0
#: a fall of more than this % rolls the run back to its best state
LM_ROLLBACK_DROP = 30.0
LM_TARGET_SOURCES = ("heldout", "perturbed")


def _sample(rows: Sequence[dict[str, Any]], size: int, seed: int) -> list[dict[str, Any]]:
    if len(rows) <= size:
        return list(rows)
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size, replace=False))
    return [rows[int(i)] for i in pick]


def perturbed_rows(forget: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The forget questions paired with each of their perturbed (wrong) answers."""
    out = []
    for r in forget:
        wrong = r.get("perturbed_answer") or r.get("perturbed_answers") or []
        for w in [wrong] if isinstance(wrong, str) else wrong:
            if isinstance(w, str) and w.strip():
                out.append({"question": r["question"], "answer": w})
    return out


@dataclass
class LMTargetSpec:
    """The encoded probe samples of one request and where the target comes from (``source``)."""

    source: str
    forget: LMData
    target: LMData
    retain: LMData
    target_rows: int

    def __post_init__(self) -> None:
        if self.source not in LM_TARGET_SOURCES:
            raise ConfigError(f"unknown LM target source {self.source!r}; choose one of {LM_TARGET_SOURCES}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "weaker": self.source != "heldout",
            "forget_rows": len(self.forget),
            "target_rows": len(self.target),
            "retain_rows": len(self.retain),
        }


def lm_target(
    tokenizer,
    forget: Sequence[dict[str, Any]],
    retain: Sequence[dict[str, Any]],
    heldout: Sequence[dict[str, Any]] | None = None,
    *,
    size: int = LM_PROBE_SIZE,
    seed: int = 0,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> LMTargetSpec | None:
    """The probe samples of a QA request: held-out rows when given, else the forget questions' perturbed answers;
    None when neither exists (then nothing is probed and the method runs its whole budget)."""
    if not forget or not retain:
        return None
    if heldout:
        source, target_rows = "heldout", list(heldout)
    else:
        source, target_rows = "perturbed", perturbed_rows(forget)
        if not target_rows:
            return None

    def enc(rows: Sequence[dict[str, Any]], salt: int) -> LMData:
        return encode_qa(tokenizer, _sample(rows, size, seed + salt), max_length=max_length)

    retain_probe = encode_qa(tokenizer, _sample(retain, 4 * size, seed + 2), max_length=max_length)
    return LMTargetSpec(source, enc(forget, 0), enc(target_rows, 1), retain_probe, len(target_rows))


@torch.no_grad()
def answer_scores(
    model: nn.Module, data: LMData, device: torch.device | None = None, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, teacher-forced in one forward pass: P(a|q)^(1/|a|) (the geometric-mean token probability of the
    labelled answer) and whether every answer token is the model's greedy prediction (the end of sequence left
    out; greedy generation then reproduces the answer, so the match rate tracks QA accuracy where the probability
    does not: an answer's template tokens stay likely while its value goes). ``device`` None: the model's own."""
    dev = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs: list[float] = []
    match: list[bool] = []
    try:
        for i in range(0, len(data), batch_size):
            ids, mask, labels = (t[i : i + batch_size].to(dev) for t in data.tensors())
            check_width(model, ids.shape[1])
            logits, target, valid = shifted_logits(model, ids, mask, labels)
            lp = token_logprobs(logits, target, valid)
            hits = (logits.argmax(-1) == target) | ~valid
            for j in range(ids.shape[0]):
                v = valid[j]
                n = int(v.sum())
                probs.append(math.exp(float(lp[j][v].double().mean())) if n else 0.0)
                last = int(v.nonzero().max()) if n else -1  # the end-of-sequence token is not required
                match.append(bool(hits[j][:last].all()) if n else False)
    finally:
        model.train(was_training)
    return np.array(probs), np.array(match, dtype=bool)


def _retain_level(model: nn.Module, data: LMData, device: torch.device | None) -> tuple[float, float]:
    """The retain sample's greedy-match rate and mean answer probability, in percent."""
    probs, match = answer_scores(model, data, device)
    return 100.0 * float(match.mean()), 100.0 * float(probs.mean())


class LMProbe(ProbeHook):
    """Engine hook of the LM methods: answer-probability probes every few steps against the held-out (or
    perturbed-answer) level; see the module docstring. Only the trained parameters are snapshotted (a LoRA run
    copies its adapters, a full fine-tune one copy of the weights)."""

    def __init__(
        self,
        spec: LMTargetSpec,
        original: nn.Module,
        device: torch.device,
        *,
        checks: int = CHECKS,
        collapse_tolerance: float = LM_COLLAPSE_TOLERANCE,
        rollback_drop: float = LM_ROLLBACK_DROP,
        max_rollbacks: int = 2,
        min_tolerance: float = MIN_TOLERANCE,
    ) -> None:
        super().__init__(
            checks=checks,
            collapse_tolerance=collapse_tolerance,
            max_rollbacks=max_rollbacks,
            rollback_drop=rollback_drop,
            rollback_any_check=True,
        )
        self.spec, self.min_tolerance = spec, min_tolerance
        # the original's retain level (before any change a method makes at its start)
        self.retain_reference = _retain_level(original, spec.retain, None)

    def measure(self, ctx: StepContext) -> Check:
        f = answer_scores(ctx.model, self.spec.forget, ctx.device)[0]
        h = answer_scores(ctx.model, self.spec.target, ctx.device)[0]
        r_match, r_prob = _retain_level(ctx.model, self.spec.retain, ctx.device)
        fp, hp = 100.0 * float(f.mean()), 100.0 * float(h.mean())
        se = 100.0 * math.sqrt(f.var(ddof=1) / len(f) + h.var(ddof=1) / len(h)) if min(len(f), len(h)) > 1 else 0.0
        tolerance = max(self.min_tolerance, se)
        drop = max(  # relative fall of either retain measure below the original's, in percent
            (100.0 * (1.0 - now / ref) for now, ref in zip((r_match, r_prob), self.retain_reference) if ref > 0),
            default=0.0,
        )
        drop = max(0.0, drop)
        values = {
            "forget_prob": round(fp, 3),
            "target_prob": round(hp, 3),
            "retain_match": round(r_match, 3),
            "retain_prob": round(r_prob, 3),
            "tolerance": round(tolerance, 3),
        }
        return Check(values, abs(fp - hp) + drop, drop, fp - hp <= tolerance and drop <= self.collapse_tolerance)

    def snapshot(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        return {str(i): p.detach().clone() for i, p in enumerate(ctx.params)}

    def restore(self, ctx: StepContext, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for i, p in enumerate(ctx.params):
                p.copy_(state[str(i)])

    def report(self) -> dict[str, Any]:
        match, prob = self.retain_reference
        return {
            "target": self.spec.to_dict(),
            "retain_reference": {"match": round(match, 3), "prob": round(prob, 3)},
            **super().report(),
        }
