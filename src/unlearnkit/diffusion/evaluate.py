"""Judge a (possibly unlearned) text-to-image model: generate for every prompt and score with the evaluators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .concepts import ConceptData, ConceptSpec
from .evaluators import Evaluators
from .inception import InceptionFID
from .metrics import (
    attack_success_rate,
    confidence_threshold,
    fd_noise_floor,
    frechet_distance,
    quality_flag,
    recognised,
    retain_accuracy,
    unlearning_accuracy,
    unlearning_split,
)
from .schedule import ddim_sample


@dataclass
class SamplingConfig:
    """How generations for evaluation are drawn: DDIM steps, guidance w, images per prompt, seed."""

    steps: int = 25
    guidance: float = 2.0
    per_prompt: int = 6
    seed: int = 0


@dataclass
class GenerationEval:
    """UA, IRA, CRA, Fréchet distance and the plain / synonym attack-success rates (percent), plus the
    generated images for the erased concept (``erased``) and for every prompt (``by_prompt``)."""

    metrics: dict[str, Any]
    erased: torch.Tensor
    by_prompt: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)


def generate(
    model: nn.Module, data: ConceptData, prompts: torch.Tensor, sampling: SamplingConfig, salt: int = 0
) -> torch.Tensor:
    """``sampling.per_prompt`` images for each row of ``prompts`` (rows repeated in order), on the CPU."""
    toks = prompts.repeat_interleave(sampling.per_prompt, dim=0)
    gen = torch.Generator().manual_seed(sampling.seed * 1000 + salt)
    samples = ddim_sample(model, toks, steps=sampling.steps, guidance=sampling.guidance, generator=gen)
    decode = getattr(model, "from_latents", None)
    return (samples if decode is None else decode(samples)).cpu()


def _grid_prompts(data: ConceptData, concept: ConceptSpec, erased: bool) -> tuple[list[int], list[int]]:
    objs, stys = [], []
    for o in range(len(data.object_names)):
        for s in range(len(data.style_names)):
            hit = (o if concept.axis == "object" else s) == concept.index
            if hit == erased:
                objs.append(o)
                stys.append(s)
    return objs, stys


@torch.no_grad()
def evaluate_erasure(
    model: nn.Module,
    data: ConceptData,
    concept: ConceptSpec,
    evaluators: Evaluators,
    sampling: SamplingConfig | None = None,
    inception: InceptionFID | None = None,
) -> GenerationEval:
    """Generate for the erased concept (in every combination with the other axis) and for all other prompts.

    UA (``ua`` = ``ua_replaced``): erased-concept generations *replaced* — classified as another concept and
    recognised as it (:func:`~unlearnkit.diffusion.metrics.recognised`: the evaluator's probability at least its
    ``confidence_threshold`` — the evaluator's attribute, else
    :func:`~unlearnkit.diffusion.metrics.confidence_threshold` of its probabilities on the real images of the
    other concepts, reported as ``confidence_threshold`` — and features within the radius of that concept's real
    images) *and* still in the setting the prompt asked for (the other axis's evaluator agrees: a replacement is
    a coherent image of another concept, a broken model's image is not); ``ua_destroyed``: the other
    generations not classified as the concept (*unrecognisable*, or recognised as nothing); ``ua_any`` their sum
    (the former UA);
    ``recognised_real``: the share of real images of the other concepts recognised as their own concept (the
    ceiling of ``ua``). IRA: generations for the other concepts of the
    same axis classified correctly; ``ira_real``: the same on as many real images; CRA: the other axis classified
    correctly on *all* generations, the erased
    concept's included (UnlearnCanvas ``quantitative/accuracy.py`` accumulates over every theme and class);
    ``fd_eval``: Fréchet distance, in the same-axis evaluator's feature space, between generations for the other
    concepts and as many real images of them, with ``fd_floor`` ± ``fd_floor_sd``, the same distance between
    two disjoint real draws of that size (5 draws); ``quality``: ``broken`` / ``degraded`` / ``ok``
    (:func:`~unlearnkit.diffusion.metrics.quality_flag`: FD or IRA against those real-image floors, then the
    destroyed share); ``asr_plain`` = 100 − ``ua_any``; ``asr_synonym``: erased-concept
    prompts written with synonyms; ``fid_inception`` (only with ``inception``, a
    :class:`~unlearnkit.diffusion.inception.InceptionFID`): the FID of the same two image sets as ``fd_eval``.
    """
    sc = sampling or SamplingConfig()
    model.eval()
    axis, other = concept.axis, concept.other_axis
    eo, es = _grid_prompts(data, concept, erased=True)
    ro, rs = _grid_prompts(data, concept, erased=False)
    erased_imgs = generate(model, data, data.prompts(eo, es), sc, salt=1)
    syn_imgs = generate(model, data, data.prompts(eo, es, synonym=True), sc, salt=2)
    kept_imgs = generate(model, data, data.prompts(ro, rs), sc, salt=3)
    n = sc.per_prompt
    kept_obj = torch.tensor(ro).repeat_interleave(n)
    kept_sty = torch.tensor(rs).repeat_interleave(n)
    erased_obj = torch.tensor(eo).repeat_interleave(n)
    erased_sty = torch.tensor(es).repeat_interleave(n)
    same = kept_obj if axis == "object" else kept_sty
    cross_all = torch.cat([erased_sty, kept_sty]) if axis == "object" else torch.cat([erased_obj, kept_obj])
    real = data.subset(data.labels(axis) != concept.index)
    gen = torch.Generator().manual_seed(sc.seed)
    pick = torch.randperm(len(real), generator=gen)[: max(len(kept_imgs), 2)]
    real_feats = evaluators.features(axis, real.images)
    real_labels = real.labels(axis)
    real_probs = _probabilities(evaluators, axis, real.images)
    threshold = getattr(evaluators, "confidence_threshold", None)
    if threshold is None:
        threshold = confidence_threshold(real_probs, real_labels)

    def judged(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = _probabilities(evaluators, axis, images)
        return recognised(probs, evaluators.features(axis, images), real_feats, real_labels, threshold=threshold)

    erased_pred, erased_ok = judged(erased_imgs)
    # a replacement is a coherent image of another concept: the other axis is still the one the prompt asked for
    erased_cross = erased_sty if axis == "object" else erased_obj
    erased_ok = erased_ok & (evaluators.predict(other, erased_imgs) == erased_cross)
    replaced, destroyed = unlearning_split(erased_pred, concept.index, evaluators.unrecognisable(axis), erased_ok)
    real_pred, real_ok = judged(real.images[pick])
    real_ok = real_ok & (evaluators.predict(other, real.images[pick]) == real.labels(other)[pick])
    floor, floor_sd = fd_noise_floor(real_feats, len(kept_imgs), draws=5, seed=sc.seed)
    metrics = {
        "ua": replaced,
        "ua_replaced": replaced,
        "ua_destroyed": destroyed,
        "ua_any": unlearning_accuracy(erased_pred, concept.index),
        "recognised_real": 100.0 * float((real_ok & (real_pred == real_labels[pick])).float().mean()),
        "ira": retain_accuracy(evaluators.predict(axis, kept_imgs), same),
        "ira_real": retain_accuracy(real_pred, real_labels[pick]),
        "cra": retain_accuracy(evaluators.predict(other, torch.cat([erased_imgs, kept_imgs])), cross_all),
        "fd_eval": frechet_distance(evaluators.features(axis, kept_imgs), real_feats[pick]),
        "fd_floor": floor,
        "fd_floor_sd": floor_sd,
        "confidence_threshold": float(threshold),
        "asr_synonym": attack_success_rate(evaluators.predict(axis, syn_imgs), concept.index),
    }
    metrics["asr_plain"] = 100.0 - metrics["ua_any"]
    metrics["quality"] = quality_flag(metrics)
    if inception is not None:
        metrics["fid_inception"] = inception.fid(kept_imgs, real.images[pick])
    by_prompt: dict[tuple[int, int], torch.Tensor] = {}
    for i, (o, s) in enumerate(zip(eo, es)):
        by_prompt[(o, s)] = erased_imgs[i * n : (i + 1) * n]
    for i, (o, s) in enumerate(zip(ro, rs)):
        by_prompt[(o, s)] = kept_imgs[i * n : (i + 1) * n]
    return GenerationEval(metrics, erased_imgs, by_prompt)


def _probabilities(evaluators: Evaluators, axis: str, images: torch.Tensor) -> torch.Tensor:
    """The evaluator's class probabilities, or — for an evaluator that only predicts labels — one-hot rows
    (every prediction fully confident, so only the feature radius decides what is recognised)."""
    fn = getattr(evaluators, "probabilities", None)
    if fn is not None:
        return fn(axis, images)
    pred = evaluators.predict(axis, images)
    return torch.nn.functional.one_hot(pred, int(pred.max()) + 1).float()
