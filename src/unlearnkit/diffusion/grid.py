"""UnlearnCanvas-style grid: every method erases each of several styles and each of several objects in turn (one
unlearned model per target), and the table reports, per method, UA / IRA / CRA averaged over the style targets
and over the object targets — the layout of UnlearnCanvas' main table (Zhang et al., 2024, Table 2).

The scoring follows OPTML-Group/UnlearnCanvas ``machine_unlearning/evaluation/quantitative/accuracy.py`` and the
protocol in ``machine_unlearning/README.md``: each unlearned model generates an *answer set* — every object in
every style, ``per_prompt`` seeds each, prompt "a {object} in {style} style" — which the style classifier and
the object classifier both judge. For a style target, ``accuracy.py --task style`` gives one accuracy per style
(over every object and seed) and ``--task class`` one per object (over every style and seed); then

- UA  = 100 − the erased style's accuracy (its images not classified as it),
- IRA = the mean of the other styles' accuracies (in-domain retain accuracy),
- CRA = the mean of every object's accuracy, over all styles, the erased one included (cross-domain),

and the same with the axes swapped for an object target. The per-concept mean is the README's "retaining accuracy
associated with each style/class ... averaged". UA is split into replaced / destroyed as in
:func:`~unlearnkit.diffusion.metrics.unlearning_split` (the evaluators' *unrecognisable* outcome), and ``fd_eval``
is the Fréchet distance, in the object evaluator's feature space, between the whole answer set and as many real
images (UnlearnCanvas ``evaluation/fid.py`` compares the answer set with the dataset), next to its real-vs-real
noise floor. Styles are the concept data's synthetic transforms (``concepts.STYLES``: ``inverted``, ``thick``,
``thin``, ``blurred``, ``shifted``, ``plain``); objects are the dataset's classes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..results import ResultTable
from ..runtime import RunSettings, resolve_device, seed_everything
from .bench import PeakMemory, check_method_hparams, miniature_hparams
from .concepts import ConceptData, ConceptSpec, load_concept_data, parse_concept
from .evaluate import SamplingConfig, generate
from .evaluators import Evaluators, cached_evaluators
from .metrics import changed_storage_mb, fd_noise_floor, frechet_distance, unlearning_split
from .request import unlearn_concept
from .training import DiffusionTrainConfig, cached_model

#: methods of the default grid: one per family, the cheapest faithful setting of each (see MINIATURE_HPARAMS)
DEFAULT_GRID_METHODS = ("esd-x", "rl", "salun")

GRID_COLUMNS = (
    ("model", "model"),
    ("style_ua", "style UA↑"),
    ("style_ua_destroyed", "UA destr"),
    ("style_ira", "style IRA↑"),
    ("style_cra", "style CRA↑"),
    ("object_ua", "object UA↑"),
    ("object_ua_destroyed", "UA destr"),
    ("object_ira", "object IRA↑"),
    ("object_cra", "object CRA↑"),
    ("fd_eval", "FD(eval)↓"),
    ("fd_floor", "FD floor"),
    ("seconds", "s/target"),
    ("peak_mem_mb", "peak MB"),
    ("storage_mb", "stored MB"),
)


def _per_concept_accuracy(pred: torch.Tensor, true: torch.Tensor, labels: Sequence[int]) -> list[float]:
    return [100.0 * float((pred[true == c] == c).float().mean()) for c in labels]


def canvas_scores(
    pred: dict[str, torch.Tensor],
    true: dict[str, torch.Tensor],
    concept: ConceptSpec,
    n_concepts: dict[str, int],
    none_label: int | None = None,
) -> dict[str, float]:
    """UA (with its replaced / destroyed split), IRA and CRA of one answer set for one erased concept.

    ``pred[axis]`` / ``true[axis]``: each generation's predicted and prompted label on both axes (``"object"``,
    ``"style"``); ``n_concepts[axis]``: how many concepts the axis has; ``none_label``: the same-axis evaluator's
    *unrecognisable* outcome. UA: the erased concept's generations not classified as it; IRA: mean accuracy of
    the other concepts of its axis; CRA: mean accuracy of every concept of the other axis over all generations
    (UnlearnCanvas ``quantitative/accuracy.py``: per-theme / per-class accuracy, then averaged).
    """
    axis, other = concept.axis, concept.other_axis
    for a in (axis, other):
        if pred[a].shape != true[a].shape or pred[a].numel() == 0:
            raise ConfigError(f"{a} predictions {tuple(pred[a].shape)} and prompts {tuple(true[a].shape)} differ")
    hit = true[axis] == concept.index
    if not bool(hit.any()):
        raise ConfigError(f"the answer set has no generation for {concept.axis} {concept.word!r}")
    replaced, destroyed = unlearning_split(pred[axis][hit], concept.index, none_label)
    kept = [c for c in range(n_concepts[axis]) if c != concept.index and bool((true[axis] == c).any())]
    crossed = [c for c in range(n_concepts[other]) if bool((true[other] == c).any())]
    ira = _per_concept_accuracy(pred[axis], true[axis], kept)
    cra = _per_concept_accuracy(pred[other], true[other], crossed)
    return {
        "ua": replaced + destroyed,
        "ua_replaced": replaced,
        "ua_destroyed": destroyed,
        "ira": sum(ira) / len(ira) if ira else float("nan"),
        "cra": sum(cra) / len(cra),
    }


@dataclass
class AnswerSet:
    """Every object in every style, ``per_prompt`` generations each, judged on both axes."""

    images: torch.Tensor
    true: dict[str, torch.Tensor]
    pred: dict[str, torch.Tensor]


@torch.no_grad()
def answer_set(model: nn.Module, data: ConceptData, evaluators: Evaluators, sampling: SamplingConfig) -> AnswerSet:
    """Generate the whole object × style grid once (UnlearnCanvas' answer set) and classify it on both axes."""
    model.eval()
    n_obj, n_sty = len(data.object_names), len(data.style_names)
    objs = [o for o in range(n_obj) for _ in range(n_sty)]
    stys = [s for _ in range(n_obj) for s in range(n_sty)]
    images = generate(model, data, data.prompts(objs, stys), sampling, salt=7)
    n = sampling.per_prompt
    true = {
        "object": torch.tensor(objs).repeat_interleave(n),
        "style": torch.tensor(stys).repeat_interleave(n),
    }
    pred = {axis: evaluators.predict(axis, images) for axis in ("object", "style")}
    return AnswerSet(images, true, pred)


@dataclass
class GridConfig(RunSettings):
    """An UnlearnCanvas-style grid on the miniature: ``methods`` × (``styles`` + ``objects``) erasures."""

    dataset: str = "digits"
    styles: Sequence[str] = ("inverted", "thick")
    objects: Sequence[str] = ("three", "seven")
    methods: Sequence[str] = DEFAULT_GRID_METHODS
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    #: score the original model's answer set against every target too (the "no unlearning" row)
    original: bool = True

    def __post_init__(self) -> None:
        if not self.styles and not self.objects:
            raise ConfigError("the grid needs at least one style or object to erase (--styles / --objects)")
        check_method_hparams(self.methods, self.hparams)

    def method_hparams(self, name: str) -> dict[str, Any]:
        return miniature_hparams(name, self.hparams, self.seed)


@dataclass
class GridRun:
    """The main table (one row per model), the per-target table (one row per model × target)."""

    table: ResultTable
    targets: ResultTable


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarise(name: str, per_target: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One main-table row: UA / IRA / CRA averaged over the style targets and over the object targets."""
    row: dict[str, Any] = {"model": name}
    for axis in ("style", "object"):
        rows = [r for r in per_target if r["axis"] == axis]
        for key in ("ua", "ua_replaced", "ua_destroyed", "ira", "cra"):
            row[f"{axis}_{key}"] = _mean([r[key] for r in rows]) if rows else None
    for key in ("fd_eval", "fd_floor", "seconds", "peak_mem_mb", "storage_mb"):
        row[key] = _mean([r.get(key) for r in per_target])
    row["targets"] = len(per_target)
    return row


def run_diff_grid(cfg: GridConfig) -> GridRun:
    """Erase every target with every method from the cached original miniature and score each answer set."""
    if cfg.out_dir:
        from ..validation import check_results_folder

        check_results_folder(cfg.out_dir, inputs=[cfg.data_dir, cfg.cache_dir])
    dev = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = load_concept_data(cfg.dataset, train_subset=cfg.train_subset, data_dir=cfg.data_dir, seed=cfg.seed)
    test = load_concept_data(cfg.dataset, split="test", data_dir=cfg.data_dir, seed=cfg.seed)
    targets = [parse_concept(f"style:{s}", data) for s in cfg.styles]
    targets += [parse_concept(f"object:{o}", data) for o in cfg.objects]
    key = hashlib.sha256(f"{cfg.dataset}|{cfg.train_subset}|{len(data)}".encode()).hexdigest()[:12]
    evaluators = cached_evaluators(
        data, test, key=key, cache_dir=cfg.cache_dir, seed=cfg.seed, device=dev, progress=cfg.progress
    )
    original, _ = cached_model(data, cfg.train, cache_dir=cfg.cache_dir, device=dev, progress=cfg.progress)
    n_concepts = {"object": len(data.object_names), "style": len(data.style_names)}
    real_feats = evaluators.features("object", data.images)
    n_gen = n_concepts["object"] * n_concepts["style"] * cfg.sampling.per_prompt
    floor, _ = fd_noise_floor(real_feats, n_gen, draws=5, seed=cfg.seed)
    pick = torch.randperm(len(real_feats), generator=torch.Generator().manual_seed(cfg.seed))[: max(n_gen, 2)]

    def score(spec: ConceptSpec, ans: AnswerSet) -> dict[str, Any]:
        s = canvas_scores(ans.pred, ans.true, spec, n_concepts, evaluators.unrecognisable(spec.axis))
        fd = frechet_distance(evaluators.features("object", ans.images), real_feats[pick])
        return {"axis": spec.axis, "target": spec.word, **s, "fd_eval": fd, "fd_floor": floor}

    per_target: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    if cfg.original:
        ans = answer_set(original, data, evaluators, cfg.sampling)
        rows = [{"model": "original", **score(t, ans), "seconds": None, "storage_mb": 0.0} for t in targets]
        per_target += rows
        summary.append(summarise("original", rows))
    for name in cfg.methods:
        rows = []
        for spec in targets:
            with PeakMemory(dev) as mem:
                res = unlearn_concept(
                    original, data, spec, name, device=dev, progress=cfg.progress, **cfg.method_hparams(name)
                )
            ans = answer_set(res.model, data, evaluators, cfg.sampling)
            row = {"model": name, **score(spec, ans), "seconds": res.seconds, "peak_mem_mb": mem.mb}
            row["storage_mb"] = changed_storage_mb(original, res.model)
            rows.append(row)
            if cfg.progress:
                scores = f"UA {row['ua']:.1f} IRA {row['ira']:.1f} CRA {row['cra']:.1f}"
                print(f"grid {name} {spec.axis}:{spec.word}: {scores} ({res.seconds:.0f}s)")
        per_target += rows
        summary.append({**summarise(name, rows), "hparams": cfg.method_hparams(name)})
    meta = {
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("train", "sampling")},
        "train": asdict(cfg.train),
        "sampling": asdict(cfg.sampling),
        "evaluator_test_accuracy": evaluators.test_accuracy,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    title = (
        f"diff-bench grid {cfg.dataset}: erase styles {', '.join(cfg.styles) or '–'} and objects "
        f"{', '.join(cfg.objects) or '–'} (UA/IRA/CRA in %, averaged over targets)"
    )
    table = ResultTable(title, summary, GRID_COLUMNS, meta=meta)
    target_cols = (("model", "model"), ("axis", "axis"), ("target", "target"), ("ua", "UA↑"),
                   ("ua_destroyed", "UA destr"), ("ira", "IRA↑"), ("cra", "CRA↑"), ("fd_eval", "FD(eval)↓"),
                   ("seconds", "seconds"))  # fmt: skip
    targets_table = ResultTable(f"{title} — per target", per_target, target_cols, meta=meta)
    if cfg.out_dir:
        from ..outputs import staged_folder

        with staged_folder(cfg.out_dir, replace=True) as staging:  # the whole folder at once, nothing stale
            table.write(staging)
            targets_table.write(staging, stem="targets")
    return GridRun(table, targets_table)
