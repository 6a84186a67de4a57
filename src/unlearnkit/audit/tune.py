"""Hyper-parameter tuning against retraining, with Optuna (extra ``tune``).

Published defaults rarely transfer to another dataset or model. :func:`tune_hparams` draws a *proxy*
forget set from the retain data (same size as the real request), retrains once without it, and searches a
method's hyper-parameters (lr, epochs, mask ratio, α …) that minimise Avg-Gap to that proxy retrain — or,
with ``objective="epsilon"``, maximise the ε score against a few proxy retrains. The defaults are enqueued
as the first trial and the objective is deterministic (fixed seed), so the result is never worse than the
defaults on the proxy; the do-nothing original is scored on the same proxy as a baseline.

The test set never enters the search: the objective's "test" accuracy is measured on a validation split held
out of the training data (left out of the proxy forget and retain sets). The original model did train on
those examples, so the validation accuracy of methods that start from it reads a little high compared with
the proxy retrain's. :func:`tune_request` then applies the winner to the real request and reports the
real gaps (test set) of the original, the defaults and the tuned setting side by side, with a warning when
tuning did not beat doing nothing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.tensors import TensorData
from ..engine import Recipe
from ..errors import ConfigError, require
from ..methods.base import get_method_class
from ..metrics.evaluate import evaluate
from ..results import ResultTable
from ..runtime import resolve_device, timed
from .common import ModelFactory, audit_hparams, registry_factory, run_method, train_fresh

#: fields never tuned by default (they change cost or the optimiser, not the unlearning trade-off)
UNTUNED = ("seed", "momentum", "weight_decay", "batch_size", "optimizer", "schedule", "grad_clip")


@dataclass
class Param:
    """One search dimension: ``kind`` is "float", "int" or "categorical"."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None


def search_space(method: str, defaults: dict[str, Any], names: list[str] | None = None) -> list[Param]:
    """Search dimensions around ``defaults``: lr (and other positive floats without an upper bound, like α)
    log-uniform in [default/10, 100·default], epochs in [1, max(3, 2·default)], bounded floats over their
    valid range, choices as categories. By default every such field except :data:`UNTUNED` is searched."""
    cls = get_method_class(method)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    chosen = names is not None
    if names is None:
        names = [
            n
            for n, f in fields.items()
            if n not in UNTUNED
            and defaults.get(n) is not None
            and (
                n in ("lr", "epochs")
                or f.metadata.get("choices") is not None
                or (f.metadata.get("low") is not None and f.metadata.get("high") is not None)
                or (type(f.default) is float and f.default > 0)  # e.g. l1-sparse's α
            )
        ]
    unknown = sorted(set(names) - set(fields))
    if unknown:
        raise ConfigError(f"{method} has no hyper-parameter {unknown}; valid: {', '.join(fields)}")
    space = []
    for n in names:
        meta, d = fields[n].metadata, defaults[n]
        lo, hi = meta.get("low"), meta.get("high")
        if meta.get("choices") is not None:
            space.append(Param(n, "categorical", choices=tuple(meta["choices"])))
        elif isinstance(d, bool):
            space.append(Param(n, "categorical", choices=(False, True)))
        elif isinstance(d, int):
            low = int(max(lo if lo is not None else 1, 1))
            high = int(hi) if hi is not None else max(3, 2 * d)
            space.append(Param(n, "int", min(low, d), max(high, d)))  # always contains the default
        elif n == "lr" or (isinstance(d, float) and d > 0 and (hi is None or lo is None)):
            low, high = d / 10.0, d * 100.0
            if lo is not None:
                low = max(low, lo if not meta.get("low_open") else lo + 1e-12)
            if hi is not None:
                high = min(high, hi)
            space.append(Param(n, "float", low, high, log=low > 0))
        elif lo is not None and hi is not None:
            low = lo + (1e-6 * (hi - lo) if meta.get("low_open") else 0.0)
            space.append(Param(n, "float", low, hi))
        elif chosen:
            raise ConfigError(f"cannot tune {method}.{n}: it has no range; leave it out of params")
    return space


def _suggest(trial: Any, p: Param) -> Any:
    if p.kind == "categorical":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high))
    return trial.suggest_float(p.name, p.low, p.high, log=p.log)


@dataclass
class TuneResult:
    """The tuned hyper-parameters and the proxy objective of every trial (lower is better: Avg-Gap, or
    −(final ε score) for ``objective="epsilon"``)."""

    method: str
    default_hparams: dict[str, Any]
    best_hparams: dict[str, Any]
    default_value: float
    best_value: float
    n_trials: int
    proxy_forget_size: int
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    objective: str = "avg_gap"
    #: the proxy objective of the original model itself (doing nothing)
    original_value: float = float("nan")
    validation_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


OBJECTIVES = ("avg_gap", "epsilon")


def tune_hparams(
    method: str,
    original: nn.Module,
    retain: TensorData,
    validation: TensorData,
    *,
    forget_size: int,
    model_factory: ModelFactory,
    recipe: Recipe,
    hparams: dict[str, Any] | None = None,
    params: list[str] | None = None,
    n_trials: int = 20,
    seed: int = 0,
    num_classes: int | None = None,
    mia: bool = True,
    objective: str = "avg_gap",
    eps_runs: int = 4,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TuneResult:
    """Search ``method``'s hyper-parameters minimising Avg-Gap to a retrain on a proxy forget set of
    ``forget_size`` examples drawn from ``retain``; ``validation`` stands in for the test set inside the
    objective (pass data held out of ``retain``, never the test set). The starting point (``hparams`` over
    the scaled published defaults) is the first trial, so ``best_value <= default_value``. With
    ``objective="epsilon"`` each trial runs the method ``eps_runs`` times and maximises the challenge's final
    ε score against as many proxy retrains (values are stored negated, so lower is better throughout)."""
    optuna = require("optuna", extra="tune")
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if n_trials < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n_trials}")
    if not 1 <= forget_size < len(retain) // 2:
        raise ConfigError(f"forget_size={forget_size} must be in [1, {len(retain) // 2}) to leave a proxy retain set")
    dev = resolve_device(device)
    published = {f.name: f.default for f in dataclasses.fields(get_method_class(method))}
    defaults = {**published, **audit_hparams(method, recipe, hparams, seed)}
    space = search_space(method, defaults, params)
    if not space:
        raise ConfigError(f"{method} has no hyper-parameter with a range to tune; name some with params=[...]")
    rng = np.random.default_rng(seed + 104729)
    perm = rng.permutation(len(retain))
    p_forget, p_retain = retain.subset(np.sort(perm[:forget_size])), retain.subset(np.sort(perm[forget_size:]))
    with timed() as clock:
        if objective == "epsilon":
            from .job import epsilon_for, method_runs, retrain_runs

            ref_runs = retrain_runs(
                p_retain,
                p_forget,
                validation,
                model_factory=model_factory,
                recipe=recipe,
                n_runs=eps_runs,
                seed=seed + 1,
                device=dev,
                progress=False,
            )
        else:
            reference = train_fresh(model_factory, p_retain, recipe, seed + 1, device=dev, desc="proxy retrain")
            ref_eval = evaluate(reference, forget=p_forget, retain=p_retain, test=validation, mia=mia)

        def score(trial: Any) -> float:
            hps = {**defaults, **{p.name: _suggest(trial, p) for p in space}}
            if objective == "epsilon":
                try:
                    runs = method_runs(
                        method,
                        original,
                        p_forget,
                        p_retain,
                        validation,
                        model_factory=model_factory,
                        recipe=recipe,
                        n_runs=eps_runs,
                        hparams={k: v for k, v in hps.items() if k != "seed"},
                        seed=seed,
                        num_classes=num_classes,
                        device=dev,
                        progress=False,
                    )
                except ConfigError as exc:
                    raise optuna.TrialPruned(str(exc)) from exc
                return -epsilon_for(method, runs, ref_runs, with_ceiling=False).final
            try:
                model = run_method(
                    method,
                    original,
                    p_forget,
                    p_retain,
                    factory=model_factory,
                    recipe=recipe,
                    hparams={k: v for k, v in hps.items() if k != "seed"},
                    seed=seed,
                    num_classes=num_classes,
                    device=dev,
                )
            except ConfigError as exc:  # an invalid combination: report it to Optuna as a failed trial
                raise optuna.TrialPruned(str(exc)) from exc
            return proxy_gap(model)

        def proxy_gap(model: nn.Module) -> float:
            ev = evaluate(model, forget=p_forget, retain=p_retain, test=validation, reference=ref_eval, mia=mia)
            gap = ev.avg_gap
            return float(gap) if gap is not None and not math.isnan(gap) else float("inf")

        if objective == "epsilon":
            from .job import epsilon_for, method_runs

            orig_runs = method_runs(
                "original",
                original,
                p_forget,
                p_retain,
                validation,
                model_factory=model_factory,
                recipe=recipe,
                n_runs=eps_runs,
                seed=seed,
                device=dev,
                progress=False,
            )
            original_value = -epsilon_for("original", orig_runs, ref_runs, with_ceiling=False).final
        else:
            original_value = proxy_gap(original)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial({p.name: defaults[p.name] for p in space})
        study.optimize(score, n_trials=n_trials, show_progress_bar=progress)
    done = [t for t in study.trials if t.value is not None]
    first = study.trials[0]
    default_value = first.value if first.value is not None else float("inf")
    best = min(done, key=lambda t: t.value) if done else first
    best_value = best.value if best.value is not None else float("inf")
    if best_value > default_value:  # cannot happen with a deterministic objective; kept as a guarantee
        best, best_value = first, default_value
    return TuneResult(
        method=method,
        default_hparams=defaults,
        best_hparams={**defaults, **best.params},
        default_value=default_value,
        best_value=best_value,
        n_trials=len(study.trials),
        proxy_forget_size=forget_size,
        seconds=clock.seconds,
        trials=[{"number": t.number, "value": t.value, **t.params} for t in study.trials],
        objective=objective,
        original_value=original_value,
        validation_size=len(validation),
    )


@dataclass
class TuneReport:
    """Tuning on the proxy, then the real request's gaps with the defaults and with the tuned setting."""

    tune: TuneResult
    table: ResultTable
    warnings: list[str] = field(default_factory=list)


def tune_request(
    cfg: Any,
    method: str,
    *,
    n_trials: int = 20,
    params: list[str] | None = None,
    objective: str = "avg_gap",
    eps_runs: int = 4,
) -> TuneReport:
    """Tune ``method`` for the request of a :class:`~unlearnkit.bench.BenchConfig` and apply the result.

    Runs ``bench`` with the defaults (original and retrain are cached), tunes on a proxy forget set drawn
    from the retain data, re-runs the method with the tuned setting on the real forget set and writes
    ``tune.json`` plus a results table (defaults vs tuned, real gaps to retrain) to ``cfg.out_dir``."""
    from ..bench import method_hparams, run_bench
    from ..checkpoint import write_json
    from ..metrics.evaluate import Evaluation
    from ..training import default_recipe

    cfg = dataclasses.replace(cfg, methods=[method])
    run = run_bench(cfg)
    bundle, split = run.bundle, run.split
    recipe = cfg.recipe or default_recipe(cfg.dataset)
    forget, retain, test = split.forget(bundle.train), split.retain(bundle.train), split.test(bundle.test)
    tune_retain, validation = validation_split(retain, seed=cfg.seed)
    factory = registry_factory(cfg.model, bundle.input_shape, bundle.output_dim, **cfg.model_kwargs)

    start = {k: v for k, v in method_hparams(cfg, method, recipe).items() if k != "seed"}
    result = tune_hparams(
        method,
        run.original,
        tune_retain,
        validation,
        forget_size=min(len(forget), len(tune_retain) // 2 - 1),
        model_factory=factory,
        recipe=recipe,
        hparams=start,
        params=params,
        n_trials=n_trials,
        seed=cfg.seed,
        num_classes=bundle.num_classes,
        mia=cfg.mia,
        objective=objective,
        eps_runs=eps_runs,
        device=cfg.device,
        progress=cfg.progress,
    )
    tuned = run_method(
        method,
        run.original,
        forget,
        retain,
        factory=factory,
        recipe=recipe,
        hparams={k: v for k, v in result.best_hparams.items() if k != "seed"},
        seed=cfg.seed,
        num_classes=bundle.num_classes,
        device=cfg.device,
    )
    retrain_row = next(r for r in run.table.rows if r["method"] == "retrain")
    ref = Evaluation("classification", {k: retrain_row[k] for k in ("ua", "ra", "ta", "mia")})
    tuned_eval = evaluate(tuned, forget=forget, retain=retain, test=test, reference=ref, mia=cfg.mia)
    default_row = next(r for r in run.table.rows if r["method"] == method)
    original_row = next(r for r in run.table.rows if r["method"] == "original")
    rows = [
        {"setting": "retrain", **ref.metrics, "avg_gap": 0.0, "proxy_gap": None},
        {
            "setting": "original (no unlearning)",
            **{k: original_row.get(k) for k in ("ua", "ra", "ta", "mia", "avg_gap")},
            "proxy_gap": result.original_value,
        },
        {
            "setting": f"{method} (defaults)",
            **{k: default_row[k] for k in ("ua", "ra", "ta", "mia", "avg_gap")},
            "proxy_gap": result.default_value,
            "hparams": result.default_hparams,
        },
        {
            "setting": f"{method} (tuned)",
            **tuned_eval.metrics,
            "avg_gap": tuned_eval.avg_gap,
            "proxy_gap": result.best_value,
            "hparams": result.best_hparams,
        },
    ]
    cols = [
        ("setting", "setting"),
        ("ua", "UA"),
        ("ra", "RA"),
        ("ta", "TA"),
        ("mia", "MIA"),
        ("avg_gap", "Avg-Gap"),
        ("proxy_gap", "proxy Avg-Gap" if objective == "avg_gap" else "proxy −(ε score)"),
    ]
    warnings = tuning_warnings(method, rows[1]["avg_gap"], rows[2]["avg_gap"], rows[3]["avg_gap"])
    meta = {"tune": result.to_dict(), "warnings": warnings, "validation_size": len(validation)}
    table = ResultTable(f"tuning {method} against retrain · {run.table.title}", rows, cols, meta)
    if cfg.out_dir:
        from ..outputs import staged_folder

        with staged_folder(cfg.out_dir) as staging:  # both files join the bench folder together
            table.write(staging, stem="tune_results")
            write_json(staging / "tune.json", result.to_dict() | {"warnings": warnings, "rows": rows})
    return TuneReport(result, table, warnings)


def validation_split(retain: TensorData, *, fraction: float = 0.1, seed: int = 0) -> tuple[TensorData, TensorData]:
    """Hold ``fraction`` of ``retain`` (at least 50 examples, at most half) out as the tuning validation set."""
    n = len(retain)
    size = min(max(int(round(fraction * n)), 50), n // 2)
    perm = np.random.default_rng(seed + 7).permutation(n)
    return retain.subset(np.sort(perm[size:])), retain.subset(np.sort(perm[:size]))


def tuning_warnings(method: str, original_gap: float | None, default_gap: float | None, tuned_gap: float) -> list[str]:
    """Plain warnings when tuning did not help on the real request (Avg-Gap to retrain, lower is better)."""
    out = []
    if original_gap is not None and tuned_gap > original_gap:
        out.append(
            f"tuned {method} is further from retrain (Avg-Gap {tuned_gap:.2f}) than doing nothing "
            f"(original {original_gap:.2f}); do not use it"
        )
    if default_gap is not None and tuned_gap > default_gap:
        out.append(
            f"tuned {method} (Avg-Gap {tuned_gap:.2f}) is worse than its defaults ({default_gap:.2f}) on the real "
            "request: the proxy forget set did not transfer"
        )
    return out
