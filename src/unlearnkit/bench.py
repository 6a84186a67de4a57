"""``bench``: the original (cached by recipe hash), retrain, then every method, in one results table.

This is the main job of unlearnkit. Every capability plugs in as configuration (dataset, model, forget
spec, methods and their hyper-parameters), never as a new pipeline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .api import STOP_MODES, unlearn
from .budget import REFERENCE_ORIGINAL_EPOCHS, Budget, budget_hparams
from .budget import scaled_epochs as _scaled_epochs
from .cache import usable_entry
from .checkpoint import save, staged_folder
from .data.heldout import heldout_split
from .data.registry import DatasetBundle, load_dataset
from .engine import Recipe
from .errors import ConfigError, DivergenceError
from .forget import ForgetSplit, needs_context, parse_forget
from .methods.base import get_method_class
from .metrics.evaluate import HEADLINES, TASK_METRICS, Evaluation
from .models import create_model
from .result_views import TableViews
from .results import ResultTable
from .runtime import cache_root, environment, resolve_device, seed_everything
from .training import default_recipe, train_model
from .validation import check_results_folder

DEFAULT_METHODS = ("ft", "ga", "rl", "l1-sparse", "salun")
#: the default methods of other tasks, used when ``BenchConfig.methods`` is left at ``DEFAULT_METHODS``
TASK_DEFAULT_METHODS = {"regression": ("ft", "ga", "l1-sparse", "blindspot", "gaussian-amnesiac")}
__all__ = ["REFERENCE_ORIGINAL_EPOCHS", "BenchConfig", "BenchRun", "run_bench", "resolve_hparams"]


@dataclass
class BenchConfig:
    """Everything that defines a benchmark run. ``hparams`` maps a method name to overrides of its
    hyper-parameters; with ``scale_epochs`` a method's published epochs are scaled from a 182-epoch original
    to this original's epochs (at least 1) unless ``hparams`` sets ``epochs``. ``budget`` is the rule of
    :mod:`unlearnkit.budget` (``"scaled"``: also at least ``MIN_STEPS`` optimiser steps; ``"published"``: the
    raw published values, no scaling)."""

    dataset: str = "digits"
    model: str = "cnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    forget: str = "random:0.1"
    methods: Sequence[str] = DEFAULT_METHODS
    recipe: Recipe | None = None
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    data_dir: str | None = None
    train_subset: int | None = None
    scale_epochs: bool = True
    budget: str = "scaled"
    cache_dir: str | None = None
    out_dir: str | None = None
    device: str | None = None
    progress: bool = True
    mia: bool = True
    #: also write predictions.npz (per-example logits of every model) to ``out_dir``, read by ``report``
    save_predictions: bool = False
    #: where the methods' target comes from (:mod:`unlearnkit.data.heldout`): ``split``, ``none`` or ``X,Y`` files;
    #: None: ``split`` with ``stop="target"``, else ``none`` (so a budget run trains the original it always did)
    heldout: str | None = None
    #: ``target``: probed runs that stop at the target (:mod:`unlearnkit.probe`); ``budget``: the whole budget
    stop: str = "budget"

    def __post_init__(self) -> None:
        Budget(mode=self.budget)
        if self.stop not in STOP_MODES:
            raise ConfigError(f"unknown stop {self.stop!r}; choose one of {', '.join(STOP_MODES)}")
        for name in self.methods:
            get_method_class(name)
        for name, hps in self.hparams.items():
            if name not in self.methods and name != "retrain":
                raise ConfigError(f"hyper-parameters given for {name!r}, which is not among the methods run")
            cls = get_method_class(name)
            bad = sorted(set(hps) - set(cls.hparam_names()))
            if bad:
                raise ConfigError(f"{name} has no hyper-parameter {bad}; valid: {', '.join(cls.hparam_names())}")


@dataclass
class BenchRun(TableViews):
    """The outcome of :func:`run_bench`: the table plus the models, for further analysis."""

    table: ResultTable
    original: nn.Module
    retrain: nn.Module
    models: dict[str, nn.Module]
    split: ForgetSplit
    bundle: DatasetBundle
    out_dir: Path | None = None


def recipe_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def scaled_epochs(method: str, original_epochs: int) -> int:
    return _scaled_epochs(get_method_class(method).reference_epochs, original_epochs)


def resolve_hparams(
    method: str,
    recipe: Recipe,
    overrides: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    scale_epochs: bool = True,
) -> dict[str, Any]:
    """A method's hyper-parameters as ``bench`` runs it: ``retrain`` copies the original's recipe; other
    methods get their published epochs scaled to the original's (:func:`scaled_epochs`); ``overrides`` win.
    Unknown names raise :class:`ConfigError` listing the valid ones."""
    names = get_method_class(method).hparam_names()
    hps = dict(overrides or {})
    unknown = sorted(set(hps) - set(names))
    if unknown:
        raise ConfigError(f"{method} has no hyper-parameter {unknown}; valid: {', '.join(names)}")
    if method == "retrain":
        for k, v in recipe.to_dict().items():
            if k in names:
                hps.setdefault(k, v)
    elif scale_epochs:
        hps = budget_hparams(get_method_class(method), hps, Budget(original_epochs=recipe.epochs))
    hps.setdefault("seed", seed)
    return hps


def method_hparams(cfg: BenchConfig, method: str, recipe: Recipe) -> dict[str, Any]:
    """:func:`resolve_hparams` with the overrides, seed and epoch scaling of ``cfg``."""
    scale = cfg.scale_epochs and cfg.budget == "scaled"
    return resolve_hparams(method, recipe, cfg.hparams.get(method), seed=cfg.seed, scale_epochs=scale)


def method_budget(cfg: BenchConfig, recipe: Recipe) -> Budget:
    """The :mod:`unlearnkit.budget` rule of ``cfg``: epochs scaled to the original's (``scale_epochs``)."""
    return Budget(mode=cfg.budget, original_epochs=recipe.epochs if cfg.scale_epochs else None)


def _cached_model(cache: Path, key: str, factory, fit, meta: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Load the checkpoint cached under ``key`` or build it with ``fit(model) -> seconds`` and cache it; a
    damaged entry is reported and rebuilt (:func:`~unlearnkit.cache.usable_entry`)."""
    folder = cache / key
    cached = usable_entry(folder, factory)
    if cached is not None:
        return cached
    model = factory()
    seconds = fit(model)
    meta = {**meta, "seconds": seconds}
    save(model, folder, meta, overwrite=True)
    return model, meta


def run_bench(cfg: BenchConfig) -> BenchRun:
    """Run the benchmark described by ``cfg`` and return the table (also written to ``cfg.out_dir``)."""
    recipe = cfg.recipe or default_recipe(cfg.dataset)
    if recipe.epochs < 1:
        raise ConfigError(f"bench trains an original model; epochs must be >= 1, got {recipe.epochs}")
    if cfg.out_dir is not None:
        check_results_folder(cfg.out_dir, inputs=[cfg.data_dir, cfg.cache_dir or cache_root()])
    bundle = load_dataset(cfg.dataset, data_dir=cfg.data_dir, train_subset=cfg.train_subset, subset_seed=0)
    task = bundle.task
    spec = cfg.heldout or ("split" if cfg.stop == "target" else "none")
    held = heldout_split(spec, bundle, data_dir=cfg.data_dir, train_subset=cfg.train_subset)
    bundle.train = held.train  # smaller only when the held-out set was carved out of the training data
    device = resolve_device(cfg.device)
    env = environment(device)
    model_spec = {
        "name": cfg.model,
        "input_shape": list(bundle.input_shape),
        "num_classes": bundle.output_dim,
        "kwargs": cfg.model_kwargs,
    }

    def factory() -> nn.Module:
        seed_everything(cfg.seed)
        return create_model(cfg.model, bundle.input_shape, bundle.output_dim, **cfg.model_kwargs)

    cache = Path(cfg.cache_dir) if cfg.cache_dir else cache_root()
    base = {
        "dataset": cfg.dataset,
        "train_subset": cfg.train_subset,
        "model": model_spec,
        "recipe": recipe.to_dict(),
        "seed": cfg.seed,
        "task": task,
        "environment": env,  # results depend on the torch version, device and thread count
    }
    if held.carved:
        base["heldout_carved"] = held.carved
    okey = recipe_key(base)

    def fit_original(m: nn.Module) -> float:
        return train_model(
            m, bundle.train, recipe, task=task, seed=cfg.seed, device=device, progress=cfg.progress, desc="original"
        ).seconds

    original, ometa = _cached_model(cache / "originals", okey, factory, fit_original, base)
    context = None
    if needs_context(cfg.forget):  # e.g. worst:METHOD:K searches the forget set with the original model
        from .audit.worst_case import ForgetContext

        context = ForgetContext(
            original, bundle.train, bundle.num_classes, device, cfg.progress, str(cache), recipe=recipe
        )
    split = (
        parse_forget(cfg.forget, bundle.train.y, class_names=bundle.class_names, seed=cfg.seed, context=context)
        if task == "classification"
        else parse_forget(cfg.forget, np.zeros(len(bundle.train)), seed=cfg.seed)
    )
    forget, retain, test = split.forget(bundle.train), split.retain(bundle.train), split.test(bundle.test)

    retrain_hp = method_hparams(cfg, "retrain", recipe)
    rkey = recipe_key({**base, "forget": split.forget_idx.tolist(), "retrain": retrain_hp})

    def fit_retrain(m: nn.Module) -> float:
        res = unlearn(
            m,
            forget,
            retain,
            "retrain",
            task=task,
            num_classes=bundle.num_classes,
            device=device,
            progress=cfg.progress,
            model_factory=factory,
            check_overlap=False,
            **retrain_hp,
        )
        m.load_state_dict(res.model.state_dict())
        return res.seconds

    retrained, rmeta = _cached_model(cache / "retrains", rkey, factory, fit_retrain, {**base, "forget": cfg.forget})
    retrain_seconds = float(rmeta.get("seconds", float("nan")))

    metric_fn = TASK_METRICS[task]

    def measure(m: nn.Module) -> dict[str, float]:
        return metric_fn(m.to(device), forget, retain, test, cfg.mia)

    ref = Evaluation(task, measure(retrained))
    rows: list[dict[str, Any]] = []

    def add_row(name: str, ev: Evaluation, seconds: float | None, hps: dict[str, Any] | None) -> None:
        ratio = seconds / retrain_seconds if seconds is not None and retrain_seconds > 0 else None
        rows.append(
            {
                "method": name,
                **ev.metrics,
                "avg_gap": ev.avg_gap,
                "seconds": seconds,
                "time_ratio": ratio,
                "hparams": hps or {},
            }
        )

    add_row("retrain", ref.with_reference(ref), retrain_seconds, retrain_hp)
    add_row("original", Evaluation(task, measure(original)).with_reference(ref), None, None)
    models: dict[str, nn.Module] = {}
    methods = TASK_DEFAULT_METHODS.get(task, cfg.methods) if cfg.methods is DEFAULT_METHODS else cfg.methods
    for name in methods:
        # epochs are scaled (and stretched to the minimum of steps) by the budget inside unlearn()
        hps = resolve_hparams(name, recipe, cfg.hparams.get(name), seed=cfg.seed, scale_epochs=False)
        if name == "auto":  # auto times the original's throughput at the original's batch
            hps.setdefault("original_batch_size", recipe.batch_size)
        try:
            res = unlearn(
                original,
                forget,
                retain,
                name,
                task=task,
                num_classes=bundle.num_classes,
                device=device,
                progress=cfg.progress,
                model_factory=factory,
                check_overlap=False,
                budget=method_budget(cfg, recipe),
                heldout=held.heldout,
                stop=cfg.stop,
                **hps,
            )
        except DivergenceError as exc:  # one diverged method is a failed row; the others still run
            rows.append({"method": name, "failed": str(exc), "hparams": hps})
            continue
        models[name] = res.model
        add_row(name, Evaluation(task, measure(res.model)).with_reference(ref), res.seconds, res.hparams)
        if res.report.get("collapse", {}).get("collapsed"):  # the collapse guard fired: mark the row
            rows[-1]["note"] = "collapsed"
        if "auto" in res.report:
            rows[-1]["auto"] = res.report["auto"]
        for key in ("target", "probe"):
            if key in res.report:
                rows[-1][key] = res.report[key]

    headline = HEADLINES.get(task, ())
    columns = [("method", "method")] + [(k, k.upper()) for k in headline]
    columns += [("avg_gap", "Avg-Gap"), ("seconds", "seconds"), ("time_ratio", "time/retrain")]
    if any("note" in r for r in rows):
        columns.append(("note", "note"))
    table = ResultTable(
        title=f"{cfg.dataset} · {cfg.model} · forget {cfg.forget} ({len(forget)} of {len(bundle.train)})",
        rows=rows,
        columns=columns,
        meta={
            "config": _config_dict(cfg),
            "recipe": recipe.to_dict(),
            "split": split.to_dict(),
            "original_seconds": ometa.get("seconds"),
            "heldout": held.source,
            "stop": cfg.stop,
            **env,
        },
    )
    out = Path(cfg.out_dir) if cfg.out_dir else None
    if out is not None:
        with staged_folder(out, replace=True) as staging:  # the whole folder at once: no stale file survives
            table.write(staging)
            if cfg.save_predictions:
                from .report.predictions import write_predictions

                every = {"original": original, "retrain": retrained, **models}
                write_predictions(staging, every, forget, retain, test, class_names=bundle.class_names)
    return BenchRun(table, original, retrained, models, split, bundle, out)


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["recipe"] = cfg.recipe.to_dict() if cfg.recipe else None
    d["methods"] = list(cfg.methods)
    return d
