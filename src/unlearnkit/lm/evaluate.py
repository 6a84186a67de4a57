"""Measure a causal LM on a split: QA ROUGE / accuracy / probability / truth ratio per set, KnowMem and VerbMem,
MIAs, fluency.

:func:`measure_lm` runs the model (generation and scoring); everything it reports is computed by the pure
functions of :mod:`unlearnkit.lm.metrics`. :func:`compare_to_retain_only` adds the metrics defined relative
to the retain-only model (forget quality, privleak).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..audit.roc import roc_auc
from .data import LMSplit
from .encode import (
    DEFAULT_MAX_LENGTH,
    IGNORE,
    LMData,
    encode_pairs,
    encode_qa,
    encode_raw_pairs,
    prompt_text,
    token_ids,
)
from .generate import (
    MAX_NEW_TOKENS,
    answer_questions,
    greedy_generate,
    row_greedy_predictions,
    row_logprobs,
    row_token_stats,
)
from .metrics import (
    PRIVLEAK_REFERENCE_AUC,
    answer_accuracy,
    choice_probability,
    ks_forget_quality,
    loss_score,
    mean_answer_probability,
    mean_extraction_strength,
    mean_ngram_entropy,
    mean_rouge_l_f1,
    mean_rouge_l_recall,
    min_k_plus_plus_score,
    min_k_score,
    model_utility,
    privleak,
    truth_ratio,
    truth_ratio_score,
    zlib_score,
)
from .metrics.mia import MIN_K

MIA_NAMES = ("loss", "zlib", "mink", "minkpp")


@dataclass
class LMEvaluation:
    """Scalar metrics plus the raw values later comparisons need (forget truth ratios, MIA AUCs)."""

    metrics: dict[str, float]
    forget_truth_ratios: list[float] = field(default_factory=list)
    generations: dict[str, list[str]] = field(default_factory=dict)
    #: how the numbers were taken (``max_new_tokens``, ``max_length``), for every result's meta
    settings: dict[str, Any] = field(default_factory=dict)


def answer_texts(tokenizer, data: LMData) -> list[str]:
    """Each row's labelled tokens decoded without special tokens: the answer as the model is scored on it (cut to
    ``max_length`` tokens), which open-unlearning compares generations with and compresses for ZLib
    (``extract_target_texts_from_processed_data`` in ``src/evals/metrics/utils.py``)."""
    return [tokenizer.decode(row[row != IGNORE].tolist(), skip_special_tokens=True).strip() for row in data.labels]


def _perturbed_logprobs(
    model: nn.Module, tokenizer, qa: Sequence[dict[str, Any]], max_length: int = DEFAULT_MAX_LENGTH, **kw
) -> list[list]:
    """Per question, the token log-probs of each perturbed answer."""
    prompts = [prompt_text(r["question"], tokenizer) for r in qa for _ in r["perturbed_answers"]]
    targets = [a for r in qa for a in r["perturbed_answers"]]
    pert = row_logprobs(model, encode_pairs(tokenizer, prompts, targets, max_length), **kw)
    out, i = [], 0
    for r in qa:
        k = len(r["perturbed_answers"])
        out.append([x.numpy() for x in pert[i : i + k]])
        i += k
    return out


def truth_ratios(
    model: nn.Module, tokenizer, qa: Sequence[dict[str, Any]], max_length: int = DEFAULT_MAX_LENGTH, **kw
) -> list[float]:
    """R_truth per question (needs ``paraphrased_answer`` and ``perturbed_answers``)."""
    qa = [r for r in qa if r.get("perturbed_answers")]
    if not qa:
        return []
    para = row_logprobs(model, encode_qa(tokenizer, qa, "paraphrased_answer", max_length), **kw)
    wrong = _perturbed_logprobs(model, tokenizer, qa, max_length, **kw)
    return [truth_ratio(p.numpy(), w) for p, w in zip(para, wrong)]


def qa_metrics(
    model: nn.Module,
    tokenizer,
    qa: Sequence[dict[str, Any]],
    prefix: str,
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_length: int = DEFAULT_MAX_LENGTH,
    **kw,
) -> tuple[dict, list]:
    """ROUGE-L recall (TOFU), ROUGE-L F1 (MUSE's KnowMem), accuracy, answer probability and truth ratio of one
    QA set. Answers are generated greedily up to ``max_new_tokens`` tokens and EOS, and scored whole against the
    answer as encoded (its first ``max_length`` tokens, decoded), as open-unlearning does."""
    gen_kw = {"device": kw.get("device"), "batch_size": kw.get("batch_size", 64)}
    gens = answer_questions(model, tokenizer, qa, max_new_tokens=max_new_tokens, **gen_kw)
    encoded = encode_qa(tokenizer, qa, max_length=max_length)
    logps = row_logprobs(model, encoded, **kw)
    ratios = truth_ratios(model, tokenizer, qa, max_length, **kw)
    answers = answer_texts(tokenizer, encoded)
    out = {
        f"{prefix}_rouge": mean_rouge_l_recall(gens, answers),
        f"{prefix}_knowmem": mean_rouge_l_f1(gens, answers),
        f"{prefix}_acc": answer_accuracy(gens, [r["value"] for r in qa]),
        f"{prefix}_prob": mean_answer_probability([x.numpy() for x in logps]),
        f"{prefix}_tr": truth_ratio_score(ratios, forget=prefix == "forget") if ratios else float("nan"),
    }
    return out, (gens, ratios)


def world_metrics(
    model: nn.Module,
    tokenizer,
    qa: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_length: int = DEFAULT_MAX_LENGTH,
    **kw,
) -> dict[str, float]:
    """TOFU's world-facts triple: normalised probability P(a)/(P(a) + Σ P(ã)), ROUGE-L recall, truth ratio."""
    out, _ = qa_metrics(model, tokenizer, qa, "world", max_new_tokens=max_new_tokens, max_length=max_length, **kw)
    rows = [r for r in qa if r.get("perturbed_answers")]
    if rows:
        correct = row_logprobs(model, encode_qa(tokenizer, rows, max_length=max_length), **kw)
        wrong = _perturbed_logprobs(model, tokenizer, rows, max_length, **kw)
        out["world_prob"] = float(np.mean([choice_probability(c.numpy(), w) for c, w in zip(correct, wrong)]))
    return out


def verbmem_rows(tokenizer, texts: Sequence[dict[str, str]], prefix_tokens: int = 32, gt_tokens: int = 128):
    """VerbMem prompts from raw texts: the first ``prefix_tokens`` tokens as prompt, the next ``gt_tokens`` as the
    true continuation (MUSE's VerbMem split is built the same way from its forget corpus)."""
    rows = []
    for t in texts:
        ids = token_ids(tokenizer, t["text"], prefix_tokens + gt_tokens)
        if len(ids) > prefix_tokens:
            prompt, gt = ids[:prefix_tokens], ids[prefix_tokens : prefix_tokens + gt_tokens]
            rows.append({"prompt": tokenizer.decode(prompt), "gt": tokenizer.decode(gt)})
    return rows


def extraction_strength_of(model: nn.Module, data: LMData, **kw) -> float:
    """Mean extraction strength (:mod:`unlearnkit.lm.metrics.extraction`) of the labelled tokens of ``data``."""
    rows = row_greedy_predictions(model, data, **kw)
    return mean_extraction_strength([(p.tolist(), y.tolist()) for p, y in rows])


def verbmem_data(tokenizer, rows: Sequence[dict[str, str]], max_length: int = DEFAULT_MAX_LENGTH) -> LMData:
    """VerbMem rows as scored data: the ``prompt`` text followed by its ``gt`` continuation, the loss on ``gt``
    (open-unlearning's MUSE ``extraction_strength`` scores the VerbMem set this way)."""
    return encode_raw_pairs(tokenizer, [r["prompt"] for r in rows], [r["gt"] for r in rows], max_length)


def verbmem(model: nn.Module, tokenizer, rows: Sequence[dict[str, str]], max_new_tokens: int = 128, **kw) -> float:
    """MUSE's VerbMem: ROUGE-L F1 between the greedy continuation of each ``prompt`` and its ``gt``
    (open-unlearning ``forget_verbmem_ROUGE``: ``rougeL_f1``, 128 new tokens)."""
    gens = greedy_generate(
        model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens, first_line=False, **kw
    )
    return mean_rouge_l_f1(gens, [r["gt"] for r in rows])


def row_mia_scores(stats: dict[str, torch.Tensor], text: str, k: float = MIN_K) -> dict[str, float]:
    """LOSS, ZLib, Min-K% and Min-K%++ scores of one answer from its :func:`row_token_stats`. As in
    open-unlearning, LOSS and ZLib use every answer token (``evaluate_probability``) and Min-K%/Min-K%++ leave out
    the last one (``tokenwise_logprobs`` drops the end-of-sequence prediction)."""
    lp, mu, sigma = (stats[key].numpy() for key in ("logp", "mu", "sigma"))
    return {
        "loss": loss_score(lp),
        "zlib": zlib_score(lp, text),
        "mink": min_k_score(lp[:-1], k),
        "minkpp": min_k_plus_plus_score(lp[:-1], mu[:-1], sigma[:-1], k),
    }


def mia_scores(
    model: nn.Module,
    tokenizer,
    qa: Sequence[dict[str, Any]],
    k: float = MIN_K,
    max_length: int = DEFAULT_MAX_LENGTH,
    **kw,
) -> dict[str, list]:
    """:func:`row_mia_scores` of each QA answer given its question, one list per attack; ZLib compresses the
    decoded label tokens of each row, as open-unlearning's ``ZLIBAttack``."""
    data = encode_qa(tokenizer, qa, max_length=max_length)
    stats = row_token_stats(model, data, **kw)
    texts = [tokenizer.decode(row[row != IGNORE].tolist(), skip_special_tokens=True) for row in data.labels]
    rows = [row_mia_scores(s, text, k) for text, s in zip(texts, stats)]
    return {n: [row[n] for row in rows] for n in MIA_NAMES}


def measure_lm(
    model: nn.Module,
    tokenizer,
    split: LMSplit,
    *,
    retain_eval: int | None = 200,
    device=None,
    batch_size: int = 64,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> LMEvaluation:
    """All model-only metrics on ``split`` (``retain_eval`` caps the retain questions scored).

    Answers are generated greedily up to ``max_new_tokens`` new tokens or EOS (open-unlearning's 200 by default)
    and every row is encoded to at most ``max_length`` tokens; both are recorded in ``settings``. Model utility is
    the harmonic mean of the retain probability, ROUGE and truth-ratio score and, when the split has world facts,
    of their normalised probability, ROUGE and truth-ratio score (TOFU's ``model_utility`` without the
    real-authors set). Neighbours are reported apart, as locality (``neighbour_*``). Extraction strength is
    measured on the forget QA (``forget_es``, TOFU) and on the VerbMem rows (``forget_verbmem_es``, MUSE)."""
    kw = {"device": device, "batch_size": batch_size}
    lengths = {"max_new_tokens": max_new_tokens, "max_length": max_length}
    model.eval()
    metrics: dict[str, float] = {}
    gens: dict[str, list[str]] = {}
    f_ratios: list[float] = []
    if split.forget:
        fm, (fg, f_ratios) = qa_metrics(model, tokenizer, split.forget, "forget", **lengths, **kw)
        metrics.update(fm)
        forget_data = encode_qa(tokenizer, split.forget, max_length=max_length)
        metrics["forget_es"] = extraction_strength_of(model, forget_data, **kw)
        gens["forget"] = fg
        metrics["fluency"] = mean_ngram_entropy(fg)
        if not f_ratios:
            warnings.warn(
                "the forget QA has no perturbed answers, so the truth ratio and forget quality cannot be computed; "
                "add 'perturbed_answer' (a list of wrong answers, as TOFU) and 'paraphrased_answer' to the records",
                stacklevel=2,
            )
    utility_parts = []
    retain = split.retain_eval(retain_eval)
    if retain:
        rm, (rg, _) = qa_metrics(model, tokenizer, retain, "retain", **lengths, **kw)
        metrics.update(rm)
        gens["retain"] = rg
        utility_parts += [rm["retain_prob"], rm["retain_rouge"], rm["retain_tr"]]
    if split.world:
        wm = world_metrics(model, tokenizer, split.world, **lengths, **kw)
        metrics.update(wm)
        utility_parts += [wm["world_prob"], wm["world_rouge"], wm["world_tr"]]
    if split.neighbour:
        nm, (ng, _) = qa_metrics(model, tokenizer, split.neighbour, "neighbour", **lengths, **kw)
        metrics.update(nm)
        gens["neighbour"] = ng
    if utility_parts:
        metrics["utility"] = model_utility(utility_parts)
    vm = split.verbmem or verbmem_rows(tokenizer, split.forget_corpus)
    if vm:
        metrics["forget_verbmem"] = verbmem(model, tokenizer, vm, device=device, batch_size=batch_size)
        metrics["forget_verbmem_es"] = extraction_strength_of(model, verbmem_data(tokenizer, vm, max_length), **kw)
    if split.holdout and split.forget:
        members = mia_scores(model, tokenizer, split.forget, max_length=max_length, **kw)
        nonmembers = mia_scores(model, tokenizer, split.holdout, max_length=max_length, **kw)
        for n in MIA_NAMES:
            metrics[f"mia_{n}"] = roc_auc(members[n], nonmembers[n], if_empty=float("nan"))
    return LMEvaluation(metrics, list(f_ratios), gens, dict(lengths))


def compare_to_retain_only(
    ev: LMEvaluation, retain_only: LMEvaluation | None = None, mia: str = "mink"
) -> dict[str, Any]:
    """Forget quality (KS p-value of forget truth ratios) and privleak (of the ``mia`` AUC; Min-K% with k = 0.4
    as MUSE and open-unlearning's ``privleak.yaml``) vs retain-only. Without a retain-only evaluation, forget
    quality is NaN and privleak uses AUC_r = 0.5 as open-unlearning's ``ref_value``; ``privleak_reference`` says
    which: ``"retain-only"`` or ``"auc=0.5 (no retain-only model)"``."""
    a = ev.metrics.get(f"mia_{mia}")
    if retain_only is None:
        out: dict[str, Any] = {"forget_quality": float("nan")}
        ref, label = PRIVLEAK_REFERENCE_AUC, f"auc={PRIVLEAK_REFERENCE_AUC} (no retain-only model)"
    else:
        out = {"forget_quality": ks_forget_quality(ev.forget_truth_ratios, retain_only.forget_truth_ratios)}
        ref, label = retain_only.metrics.get(f"mia_{mia}"), "retain-only"
    usable = a is not None and ref is not None and not np.isnan(ref)
    out["privleak"] = privleak(a, ref) if usable else float("nan")
    out["privleak_reference"] = label if usable else "none (no MIA: give holdout QA)"
    return out
