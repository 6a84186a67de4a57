"""``audit``: a bench run plus the strong evidence — U-LiRA, the ε score, population attacks, relearning.

Everything lands in the bench folder: results.json/csv and predictions.npz from ``bench``, then
``audit.json`` (every curve and number) and ``audit_results.json/csv`` (one row per model), which
``unlearnkit report`` turns into a page.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tensors import TensorData
from ..engine import Recipe
from ..errors import ConfigError
from ..metrics.accuracy import accuracy
from ..metrics.predict import predict_outputs
from ..outputs import staged_folder, write_json
from ..results import ResultTable
from ..runtime import resolve_device
from .common import ORIGINAL, ModelFactory, registry_factory, run_method, train_fresh
from .epsilon import EpsilonScore, epsilon_score, forget_quality_ceiling, matched_ceiling
from .population import population_attacks
from .relearn import check_k, relearn_attack, resolve_k
from .scores import logit_confidence
from .ulira import train_shadow_pairs, ulira

AUDIT_JSON = "audit.json"


@dataclass
class RunScores:
    """Forget-set confidences φ (runs × examples) and mean retain / test accuracy of repeated runs."""

    phi: np.ndarray
    ra: float
    ta: float
    seeds: list[int] = dataclasses.field(default_factory=list)


def _scores(
    models: list[nn.Module], forget: TensorData, retain: TensorData, test: TensorData, seeds: list[int]
) -> RunScores:
    phi = np.stack([logit_confidence(predict_outputs(m, forget), forget.y) for m in models])
    ra = float(np.mean([accuracy(predict_outputs(m, retain), retain.y) for m in models]))
    ta = float(np.mean([accuracy(predict_outputs(m, test), test.y) for m in models]))
    return RunScores(phi, ra, ta, seeds)


def retrain_runs(
    retain: TensorData,
    forget: TensorData,
    test: TensorData,
    *,
    model_factory: ModelFactory,
    recipe: Recipe,
    n_runs: int,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> RunScores:
    """``n_runs`` retrains from scratch on ``retain``, each initialised and shuffled by its own seed
    ``seed + 1000 + i``, scored on ``forget``."""
    seeds = [seed + 1000 + i for i in range(n_runs)]
    models = [
        train_fresh(model_factory, retain, recipe, s, device=device)
        for s in tqdm(seeds, desc="ε retrains", disable=not progress, leave=False)
    ]
    return _scores(models, forget, retain, test, seeds)


def method_runs(
    method: str,
    original: nn.Module,
    forget: TensorData,
    retain: TensorData,
    test: TensorData,
    *,
    model_factory: ModelFactory,
    recipe: Recipe,
    n_runs: int,
    hparams: dict[str, Any] | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> RunScores:
    """``n_runs`` runs of ``method`` from the same original (seeds ``seed + i``; for ``retrain`` also its
    initialisation), scored on ``forget``."""
    seeds = [seed + i for i in range(n_runs)]
    models = [
        run_method(
            method,
            original,
            forget,
            retain,
            factory=model_factory,
            recipe=recipe,
            hparams=hparams,
            seed=s,
            num_classes=num_classes,
            device=device,
        )
        for s in tqdm(seeds, desc=f"ε {method}", disable=not progress, leave=False)
    ]
    return _scores(models, forget, retain, test, seeds)


def epsilon_for(
    method: str,
    runs: RunScores,
    reference: RunScores,
    family: str = "challenge",
    with_ceiling: bool = False,
    ceiling: float | None = None,
) -> EpsilonScore:
    """The challenge score of ``runs`` against the retrained ``reference`` runs."""
    return epsilon_score(
        runs.phi,
        reference.phi,
        ra_unlearned=runs.ra,
        ra_retrain=reference.ra,
        ta_unlearned=runs.ta,
        ta_retrain=reference.ta,
        method=method,
        family=family,
        with_ceiling=with_ceiling,
        ceiling=ceiling,
    )


@dataclass
class AuditConfig:
    """What to audit on top of a bench run (``bench.out_dir`` is required). Set a count to 0 to skip a part."""

    bench: Any  # BenchConfig
    ulira_pairs: int = 8
    ulira_targets: int | None = None
    epsilon_runs: int = 8
    #: "challenge" (the NeurIPS 2023 scoring) or "intervals" (every interval attack; not comparable)
    epsilon_family: str = "challenge"
    relearn_steps: int = 10
    relearn_slice: int | None = None
    relearn_lr: float = 0.05
    #: report forget accuracy after this many relearning steps (default: resolved from the request's kind,
    #: relearn.CLASSWISE_K for class-wise requests, relearn_steps otherwise; see relearn.resolve_k)
    relearn_k: int | None = None
    #: relearn on a slice of the forget set ("forget") or on its nearest retain neighbours ("neighbours")
    relearn_source: str = "forget"
    #: also audit retrain against retrain: the chance level of U-LiRA and the finite-N ceiling of the ε score
    retrain_reference: bool = True


def audit_notes(report: dict[str, Any]) -> list[str]:
    """Plain sentences saying what the audit's numbers are measured against (printed under the table)."""
    notes = []
    eps = report.get("epsilon") or {}
    if eps:
        first = next(iter(eps.values()))
        std = (report.get("epsilon_ceiling") or {}).get("standard_normal", float("nan"))
        notes.append(
            f"ε score: {first['family']} attack family, N = {first['n_runs']} runs. Perfect unlearning does not "
            f"score 1 at finite N (only N → ∞ does): read every row, retrain's included, against the ε ceiling "
            f"column, {first['ceiling']:.3f} here — the challenge's score of two independent samples of N runs "
            "per forget example drawn from one distribution, a normal with that example's mean and spread "
            "estimated on the reference retrains themselves (the challenge's thresholds have fixed widths, so "
            f"the ceiling depends on that spread). The standard-normal ceiling, {std:.3f}, assumes a spread of "
            "1 and is not the one to compare with"
        )
    if "relearn_k" in report:
        why = report.get("relearn_k_reason")
        notes.append(
            f"relearning: forget accuracy after k = {report['relearn_k']} steps, and its mean excess over "
            "retrain's curve on steps 1…k (step 0 left out)" + (f"; k = {report['relearn_k']}: {why}" if why else "")
        )
    if report.get("ulira_scheme"):
        notes.append(f"U-LiRA audited {report['ulira_scheme']}")
    return notes


def run_audit(cfg: AuditConfig) -> ResultTable:
    """Run ``bench`` (saving predictions), then every audit, and write ``audit.json`` and the audit table."""
    from ..bench import run_bench
    from ..training import default_recipe

    bc = cfg.bench
    if not bc.out_dir:
        raise ConfigError("audit writes into the bench folder; set out_dir (CLI: --out)")
    if cfg.relearn_steps > 0:
        check_k(cfg.relearn_k, cfg.relearn_steps)
    elif cfg.relearn_k is not None:
        raise ConfigError(f"relearn k={cfg.relearn_k} was given but relearning is off (relearn_steps=0); drop one")
    if cfg.relearn_steps > 0 and cfg.relearn_source == "neighbours" and bc.forget.startswith("class:"):
        raise ConfigError(
            f"--relearn-source neighbours relearns on retain examples of the forget set's labels, and a class-wise "
            f"request ({bc.forget}) leaves none; use --relearn-source forget"
        )
    run = run_bench(dataclasses.replace(bc, save_predictions=True))
    bundle, split = run.bundle, run.split
    if bundle.task != "classification":
        raise ConfigError("the audits need a classification task (membership scores use class confidences)")
    recipe = bc.recipe or default_recipe(bc.dataset)
    dev = resolve_device(bc.device)
    forget, retain, test = split.forget(bundle.train), split.retain(bundle.train), split.test(bundle.test)

    factory = registry_factory(bc.model, bundle.input_shape, bundle.output_dim, **bc.model_kwargs)

    models = {"original": run.original, "retrain": run.retrain, **run.models}
    hps = {
        r["method"]: {k: v for k, v in r.get("hparams", {}).items() if k != "seed"}
        for r in run.table.rows
        if r["method"] in run.models
    }
    audited = list(dict.fromkeys([ORIGINAL, *(["retrain"] if cfg.retrain_reference else []), *run.models]))
    report: dict[str, Any] = {"settings": dataclasses.asdict(cfg) | {"bench": run.table.meta.get("config")}}
    rows: dict[str, dict[str, Any]] = {name: {"method": name} for name in models}

    report["population"] = {}
    for name, m in models.items():
        res = population_attacks(m.to(dev), forget, test)
        report["population"][name] = {k: v.to_dict() for k, v in res.items()}
        rows[name].update({f"{k}_auc": v.auc for k, v in res.items()})

    if cfg.relearn_steps > 0 and len(forget) >= 2:
        curves = relearn_attack(
            models,
            forget,
            slice_size=cfg.relearn_slice,
            steps=cfg.relearn_steps,
            lr=cfg.relearn_lr,
            source=cfg.relearn_source,
            retain=retain,
            seed=bc.seed,
            device=dev,
        )
        resolved = resolve_k(cfg.relearn_k, cfg.relearn_steps, forget.y, retain.y)
        k_at = resolved.k
        report["relearn"] = {k: c.to_dict() for k, c in curves.items()}
        report.update(relearn_k=k_at, relearn_request_kind=resolved.kind, relearn_k_reason=resolved.reason)
        ref_curve = curves.get("retrain")
        for k, c in curves.items():
            rows[k]["relearn_at_k"] = c.accuracy_at(k_at)
            if ref_curve is not None:
                rows[k]["relearn_vs_retrain"] = c.area_between(ref_curve, k_at)

    if cfg.epsilon_runs > 0:
        ref = retrain_runs(
            retain,
            forget,
            test,
            model_factory=factory,
            recipe=recipe,
            n_runs=cfg.epsilon_runs,
            seed=bc.seed,
            device=dev,
            progress=bc.progress,
        )
        report["epsilon"] = {}
        report["epsilon_retrain_seeds"] = ref.seeds
        ceiling = matched_ceiling(ref.phi, cfg.epsilon_runs, family=cfg.epsilon_family, seed=bc.seed)
        report["epsilon_ceiling"] = {
            "matched": ceiling,
            "standard_normal": forget_quality_ceiling(cfg.epsilon_runs, cfg.epsilon_family),
        }
        for name in audited:
            runs = method_runs(
                name,
                run.original,
                forget,
                retain,
                test,
                model_factory=factory,
                recipe=recipe,
                n_runs=cfg.epsilon_runs,
                hparams=hps.get(name),
                seed=bc.seed,
                num_classes=bundle.num_classes,
                device=dev,
                progress=bc.progress,
            )
            sc = epsilon_for(name, runs, ref, cfg.epsilon_family, ceiling=ceiling)
            report["epsilon"][name] = sc.to_dict() | {"seeds": runs.seeds}
            rows[name].update(
                {"eps_forget_quality": sc.forget_quality, "eps_ceiling": sc.ceiling, "eps_final": sc.final}
            )

    if cfg.ulira_pairs > 0:
        shadows = train_shadow_pairs(
            bundle.train,
            model_factory=factory,
            recipe=recipe,
            n_pairs=cfg.ulira_pairs,
            n_targets=cfg.ulira_targets,
            seed=bc.seed,
            forget_spec=bc.forget,
            num_classes=bundle.num_classes,
            device=dev,
            progress=bc.progress,
        )
        report["ulira"] = {}
        report["ulira_scheme"] = shadows.scheme
        for name in audited:
            res = ulira(name, shadows, hparams=hps.get(name), device=dev, progress=bc.progress)
            report["ulira"][name] = res.to_dict()
            rows[name].update(
                {
                    "ulira_auc": res.auc,
                    "ulira_acc": res.accuracy,
                    "ulira_tpr@1%": res.tpr_at_1pct_fpr,
                    "ulira_tpr@0.1%": res.tpr_at_01pct_fpr,
                }
            )

    columns = [("method", "method")]
    for key, label in (
        ("ulira_auc", "U-LiRA AUC"),
        ("ulira_acc", "U-LiRA acc"),
        ("ulira_tpr@1%", "TPR@1%"),
        ("ulira_tpr@0.1%", "TPR@0.1%"),
        ("eps_forget_quality", "ε forget"),
        ("eps_ceiling", "ε ceiling"),
        ("eps_final", "ε final"),
        ("loss_auc", "loss AUC"),
        ("confidence_auc", "conf AUC"),
        ("entropy_auc", "entropy AUC"),
        ("relearn_at_k", f"relearn acc@{report.get('relearn_k', 'k')}"),
        ("relearn_vs_retrain", "relearn Δ retrain"),
    ):
        if any(key in r for r in rows.values()):
            columns.append((key, label))
    notes = audit_notes(report)
    report["notes"] = notes
    table = ResultTable(
        f"audit · {run.table.title}", list(rows.values()), columns, {"bench": run.table.meta, "notes": notes}
    )
    # the bench run above replaced the folder as a whole; the audit files join it together
    with staged_folder(bc.out_dir) as staging:
        write_json(staging / AUDIT_JSON, report)
        table.write(staging, stem="audit_results")
    return table
