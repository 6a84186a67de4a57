"""Judge a (possibly unlearned) text-to-image model: generate for every prompt and score with the evaluators."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .concepts import ConceptData, ConceptSpec
from .evaluators import Evaluators
from .metrics import attack_success_rate, frechet_distance, retain_accuracy, unlearning_accuracy
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
    return ddim_sample(model, toks, steps=sampling.steps, guidance=sampling.guidance, generator=gen).cpu()


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
) -> GenerationEval:
    """Generate for the erased concept (in every combination with the other axis) and for all other prompts.

    UA: erased-concept generations not classified as it; IRA: other concepts of the same axis classified
    correctly; CRA: the other axis classified correctly on those generations; ``fd_eval``: Fréchet distance,
    in the same-axis evaluator's feature space, between generations for the other concepts and real images
    of them; ``asr_plain`` = 100 − UA; ``asr_synonym``: erased-concept prompts written with synonyms.
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
    same = kept_obj if axis == "object" else kept_sty
    cross = kept_sty if axis == "object" else kept_obj
    real = data.subset(data.labels(axis) != concept.index)
    gen = torch.Generator().manual_seed(sc.seed)
    pick = torch.randperm(len(real), generator=gen)[: max(len(kept_imgs), 2)]
    metrics = {
        "ua": unlearning_accuracy(evaluators.predict(axis, erased_imgs), concept.index),
        "ira": retain_accuracy(evaluators.predict(axis, kept_imgs), same),
        "cra": retain_accuracy(evaluators.predict(other, kept_imgs), cross),
        "fd_eval": frechet_distance(evaluators.features(axis, kept_imgs), evaluators.features(axis, real.images[pick])),
        "asr_synonym": attack_success_rate(evaluators.predict(axis, syn_imgs), concept.index),
    }
    metrics["asr_plain"] = 100.0 - metrics["ua"]
    by_prompt: dict[tuple[int, int], torch.Tensor] = {}
    for i, (o, s) in enumerate(zip(eo, es)):
        by_prompt[(o, s)] = erased_imgs[i * n : (i + 1) * n]
    for i, (o, s) in enumerate(zip(ro, rs)):
        by_prompt[(o, s)] = kept_imgs[i * n : (i + 1) * n]
    return GenerationEval(metrics, erased_imgs, by_prompt)
