"""Judge a (possibly unlearned) text-to-image model: generate for every prompt and score with the evaluators."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .concepts import ConceptData, ConceptSpec
from .evaluators import Evaluators
from .inception import InceptionFID
from .metrics import (
    attack_success_rate,
    fd_noise_floor,
    frechet_distance,
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

    metrics: dict[str, float]
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

    UA: erased-concept generations not classified as it, split into ``ua_replaced`` (classified as another
    concept) and ``ua_destroyed`` (classified *unrecognisable*); IRA: generations for the other concepts of the
    same axis classified correctly; CRA: the other axis classified correctly on *all* generations, the erased
    concept's included (UnlearnCanvas ``quantitative/accuracy.py`` accumulates over every theme and class);
    ``fd_eval``: Fréchet distance, in the same-axis evaluator's feature space, between generations for the other
    concepts and as many real images of them, with ``fd_floor`` ± ``fd_floor_sd``, the same distance between
    two disjoint real draws of that size (5 draws); ``asr_plain`` = 100 − UA; ``asr_synonym``: erased-concept
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
    erased_pred = evaluators.predict(axis, erased_imgs)
    replaced, destroyed = unlearning_split(erased_pred, concept.index, evaluators.unrecognisable(axis))
    real_feats = evaluators.features(axis, real.images)
    floor, floor_sd = fd_noise_floor(real_feats, len(kept_imgs), draws=5, seed=sc.seed)
    metrics = {
        "ua": unlearning_accuracy(erased_pred, concept.index),
        "ua_replaced": replaced,
        "ua_destroyed": destroyed,
        "ira": retain_accuracy(evaluators.predict(axis, kept_imgs), same),
        "cra": retain_accuracy(evaluators.predict(other, torch.cat([erased_imgs, kept_imgs])), cross_all),
        "fd_eval": frechet_distance(evaluators.features(axis, kept_imgs), real_feats[pick]),
        "fd_floor": floor,
        "fd_floor_sd": floor_sd,
        "asr_synonym": attack_success_rate(evaluators.predict(axis, syn_imgs), concept.index),
    }
    metrics["asr_plain"] = 100.0 - metrics["ua"]
    if inception is not None:
        metrics["fid_inception"] = inception.fid(kept_imgs, real.images[pick])
    by_prompt: dict[tuple[int, int], torch.Tensor] = {}
    for i, (o, s) in enumerate(zip(eo, es)):
        by_prompt[(o, s)] = erased_imgs[i * n : (i + 1) * n]
    for i, (o, s) in enumerate(zip(ro, rs)):
        by_prompt[(o, s)] = kept_imgs[i * n : (i + 1) * n]
    return GenerationEval(metrics, erased_imgs, by_prompt)
