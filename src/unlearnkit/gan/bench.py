"""``gan-bench``: the original GAN, the fine-tuning baseline (stage 2 on positives, no repulsion) and
Adapt-then-Unlearn with each repulsion variant the paper compares (EL2, NL2, IL2), all from the same adapted
models θ_N — feature share, unrecognisable share, FD of the rest with its noise floor, precision and recall,
distance to θ_N, seconds — plus a PNG grid of samples per model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch

from ..diffusion.images import save_grid
from ..errors import ConfigError
from ..outputs import staged_folder
from ..result_views import TableViews
from ..results import ResultTable
from ..runtime import RunSettings, timed
from ..validation import check_results_folder
from .adapt_unlearn import REPULSIONS, AdaptUnlearnConfig, adapt, negatives_of_class, select_positives, unlearn_stage
from .metrics import evaluate_gan, evaluator_for, feature_probability, real_reference
from .models import GAN, generator_distance
from .train import GANTrainConfig, ImageData, cached_gan, load_images

COLUMNS = (
    ("model", "model"),
    ("feature_share", "feature %↓"),
    ("unrecognisable", "unrec %"),
    ("fd_rest", "FD rest↓"),
    ("fd_sd", "FD sd"),
    ("fd_ratio", "FD/orig"),
    ("fd_floor", "FD floor"),
    ("precision", "prec %↑"),
    ("recall", "rec %↑"),
    ("dist_adapted", "‖θ−θ_N‖"),
    ("seconds", "seconds"),
)


@dataclass
class GANBenchConfig(RunSettings):
    """What ``gan-bench`` runs. ``variants`` are repulsion names; ``"finetune"`` is the baseline."""

    dataset: str = "digits"
    feature: int = 3
    variants: Sequence[str] = ("finetune", "el2", "nl2", "il2")
    #: γ per repulsion variant, overriding ``method.gamma`` (the three terms have very different scales)
    gammas: dict[str, float] = field(default_factory=dict)
    train: GANTrainConfig = field(default_factory=GANTrainConfig)
    method: AdaptUnlearnConfig = field(default_factory=AdaptUnlearnConfig)
    n_negatives: int = 64
    positive_pool: int = 5000
    #: confident positives: drop samples whose evaluator probability of the feature is at least this
    positive_max_prob: float | None = None
    #: class-balanced positives: restore the argmax positives' class mix after the probability filter
    balance_positives: bool = False
    n_samples: int = 2000
    #: sample sets per model whose shares and FD are averaged (the FD's spread across them is reported)
    fd_draws: int = 1

    def __post_init__(self) -> None:
        bad = [v for v in self.variants if v != "finetune" and v not in REPULSIONS]
        if bad or not self.variants:
            raise ConfigError(f"unknown variant(s) {bad}; choose from finetune, {', '.join(REPULSIONS)}")
        bad_gamma = [k for k in self.gammas if k not in REPULSIONS]
        if bad_gamma:
            raise ConfigError(f"gammas given for unknown variant(s) {bad_gamma}; choose from {', '.join(REPULSIONS)}")
        if self.fd_draws < 1:
            raise ConfigError(f"fd_draws must be >= 1, got {self.fd_draws}")
        if self.n_samples < 10 or self.n_negatives < 2 or self.positive_pool < 10:
            raise ConfigError("n_samples and positive_pool must be >= 10 and n_negatives >= 2")
        if self.positive_max_prob is not None and not 0 < self.positive_max_prob <= 1:
            raise ConfigError(f"positive_max_prob must be in (0, 1], got {self.positive_max_prob}")


@dataclass
class GANBenchRun(TableViews):
    table: ResultTable
    models: dict[str, GAN]


def _mean_distance(gan: GAN, adapted: Sequence[GAN]) -> float:
    return sum(generator_distance(gan, a) for a in adapted) / len(adapted)


def run_gan_bench(cfg: GANBenchConfig) -> GANBenchRun:
    """Train (or load) the original and the evaluator, adapt once, unlearn with every variant, measure."""
    if cfg.out_dir:
        check_results_folder(cfg.out_dir, inputs=[cfg.data_dir, cfg.cache_dir])
    data = load_images(cfg.dataset, train_subset=cfg.train_subset, data_dir=cfg.data_dir, seed=cfg.seed)
    test = load_images(cfg.dataset, split="test", data_dir=cfg.data_dir, seed=cfg.seed)
    if not 0 <= cfg.feature < len(data.class_names):
        raise ConfigError(f"feature must be a class index in [0, {len(data.class_names) - 1}], got {cfg.feature}")
    return _run(cfg, data, test)


def _run(cfg: GANBenchConfig, data: ImageData, test: ImageData) -> GANBenchRun:
    kw = {"device": cfg.device, "progress": cfg.progress}
    original, meta, _ = cached_gan(data, cfg.train, cache_dir=cfg.cache_dir, **kw)
    ev = evaluator_for(data, test, cache_dir=cfg.cache_dir, seed=cfg.seed, **kw)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return ev.predict("object", x.to(next(ev.object.parameters()).device))

    reference = real_reference(ev, data, cfg.feature, cfg.n_samples, seed=cfg.seed)
    negatives = negatives_of_class(original, predict, cfg.feature, cfg.n_negatives, seed=cfg.seed + 1)
    positives = select_positives(
        original,
        predict,
        cfg.feature,
        cfg.positive_pool,
        seed=cfg.seed + 2,
        feature_prob=lambda x: feature_probability(ev, x, cfg.feature),
        max_prob=cfg.positive_max_prob,
        balance=cfg.balance_positives,
    )
    with timed() as t_adapt:
        adapted = adapt(original, negatives, cfg.method, **kw)
    rows: list[dict] = []
    models: dict[str, GAN] = {"original": original}

    def measure(name: str, gan: GAN, seconds: float | None) -> dict:
        scores = evaluate_gan(gan, ev, reference, cfg.feature, n_samples=cfg.n_samples, draws=cfg.fd_draws)
        row = {"model": name, **scores}
        row["dist_adapted"] = _mean_distance(gan, adapted)
        row["seconds"] = seconds
        rows.append(row)
        return row

    base = measure("original", original, meta.get("seconds"))
    for i, a in enumerate(adapted):
        measure(f"adapted θ_N[{i}]", a, t_adapt.seconds / len(adapted))
    for v in cfg.variants:
        mcfg = replace(cfg.method, repulsion=None if v == "finetune" else v, gamma=cfg.gammas.get(v, cfg.method.gamma))
        with timed() as t:
            gan, history = unlearn_stage(original, positives, adapted, mcfg, **kw)
        models[mcfg.name] = gan
        label = mcfg.name if v == "finetune" else f"{mcfg.name} γ={mcfg.gamma:g}"
        row = measure(label, gan, t.seconds + (t_adapt.seconds if v != "finetune" else 0.0))
        row["repulsion_start"], row["repulsion_end"] = history[0], history[-1]
    for r in rows:
        r["fd_ratio"] = r["fd_rest"] / base["fd_rest"] if base["fd_rest"] else float("nan")
    table = ResultTable(
        f"gan-bench {cfg.dataset}: unlearn class {cfg.feature} ({data.class_names[cfg.feature]})",
        rows,
        COLUMNS,
        meta={
            "config": asdict(cfg),
            "evaluator_accuracy": ev.test_accuracy,
            "n_negatives": len(negatives),
            "n_positives": len(positives),
        },
    )
    if cfg.out_dir:
        grid = [m.sample(16, seed=cfg.seed + 99) for m in models.values()]
        with staged_folder(cfg.out_dir, replace=True) as staging:  # the whole folder at once, nothing stale
            table.write(staging)
            save_grid(staging / "samples.png", grid)
            save_grid(staging / "negatives.png", [negatives[:16]])
    return GANBenchRun(table, models)
