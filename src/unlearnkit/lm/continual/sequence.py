"""Run a sequence of unlearning requests with O3 or a sequential baseline and evaluate after every request.

After request k (and once before the first, row "0"): QA accuracy on the forget questions of every request so
far (each one and together), on the requests still to come, on the retain questions (neighbours excluded), on
the neighbour people (locality) and on world facts (utility), plus, for O3, the mean gate weight on forget and
retain prompts. Baselines apply an existing ``lm`` method request after request, each starting from the model
the previous request left, with or without the retain data.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ...errors import ConfigError
from ...methods.base import get_method_class
from ...results import ResultTable
from ...runtime import resolve_device, timed
from ..api import coerce_hparams, unlearn_lm
from ..data import IDK_ANSWERS
from ..encode import encode_pairs, prompt_text
from ..generate import answer_questions
from ..metrics import answer_accuracy
from .gate import GatedLM
from .o3 import O3Config, attach_lora, max_subspace_overlap, mean_subspace_overlap, train_request_adapter
from .ood import ContrastiveEntropyDetector, DetectorConfig
from .requests import RequestSequence
from .routing import gate_aurocs, reworded_question
from .selection import select_detector

#: adapter values for the embedded tiny model (trained from scratch at lr 5e-3): the published 7B learning rate
#: 2e-4 barely moves it
TINY_O3 = {"lr": 3e-3}
#: the tiny model's detector (chosen with ``benchmarks/o3_detector.py`` on the tiny Llama, checked on a tiny
#: GPT-2; at the default configuration it routes better than the search below, see benchmarks/RESULTS.md)
TINY_DETECTOR = {"lr": 3e-3, "epochs": 10}
#: the detector candidates tried per request on a user's model (:mod:`.selection`): the tiny model's setting and
#: its neighbours, chosen by measured separation instead of assuming the model is ours
DETECTOR_SEARCH = "1e-3x5,3e-3x10,1e-2x10"


def detector_settings(given: dict[str, Any], *, tiny: bool = False) -> dict[str, Any]:
    """The detector's keyword arguments for ``lm-continual``: :data:`TINY_DETECTOR` for the tiny model,
    :data:`DETECTOR_SEARCH` for a user's model, unless ``given`` sets ``lr`` or ``epochs`` without a ``search``
    (that setting is used)."""
    fixed = ("lr" in given or "epochs" in given) and "search" not in given
    if tiny:
        return {**TINY_DETECTOR, **given}
    return {"search": "" if fixed else DETECTOR_SEARCH, **given}


def no_retain_hparams(method: str) -> dict[str, Any]:
    """The hyper-parameters that switch a method's retain term off (``retain_weight``, RMU's ``alpha``)."""
    names = get_method_class(method, domain="lm").hparam_names()
    if "retain_weight" in names:
        return {"retain_weight": 0.0}
    if method == "rmu":
        return {"alpha": 0.0}
    return {}


@dataclass
class ContinualConfig:
    """``method``: ``"o3"`` or a registered ``lm`` method run sequentially; ``with_retain`` applies to the
    baselines only (O3 never sees retain data)."""

    method: str = "o3"
    with_retain: bool = False
    o3: O3Config = field(default_factory=O3Config)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    gate: str = "ood"
    hparams: dict[str, Any] = field(default_factory=dict)
    retain_eval: int = 200
    seed: int = 0
    device: str | None = None
    progress: bool = False
    announce: bool = False

    def __post_init__(self) -> None:
        if self.method != "o3":
            get_method_class(self.method, domain="lm")
        if self.gate not in ("ood", "always"):
            raise ConfigError(f"gate must be 'ood' (the detectors decide) or 'always' (weight 1), got {self.gate!r}")

    def label(self) -> str:
        if self.method == "o3":
            return "o3" if self.gate == "ood" else "o3 (no gate)"
        return f"{self.method} ({'with' if self.with_retain else 'no'} retain)"


def _accuracy(model: nn.Module, tokenizer, qa: Sequence[dict[str, Any]], device) -> float:
    if not qa:
        return float("nan")
    return answer_accuracy(answer_questions(model, tokenizer, qa, device=device), [r["value"] for r in qa])


def evaluate_step(
    model: nn.Module,
    tokenizer,
    seq: RequestSequence,
    done: int,
    *,
    retain_eval: int = 200,
    neighbour_eval: int = 100,
    device=None,
) -> dict[str, float]:
    """Accuracies after ``done`` requests: ``forget_acc`` (requests 1..done together; nan when none),
    ``forget_acc_R<k>`` each, ``future_acc`` (requests not yet made), ``retain_acc``, ``neighbour_acc``,
    ``world_acc`` (the first ``retain_eval`` retain questions not about neighbours, the first ``neighbour_eval``
    neighbour questions)."""
    row: dict[str, float] = {}
    correct, total = 0.0, 0
    for k, qa in enumerate(seq.requests):
        acc = _accuracy(model, tokenizer, qa, device)
        row[f"forget_acc_{seq.names[k]}"] = acc
        if k < done:
            correct, total = correct + acc * len(qa), total + len(qa)
    row["forget_acc"] = correct / total if total else float("nan")
    future = [r for qa in seq.requests[done:] for r in qa]
    row["future_acc"] = _accuracy(model, tokenizer, future, device)
    row["retain_acc"] = _accuracy(model, tokenizer, seq.split.retain_eval(retain_eval), device)
    row["neighbour_acc"] = _accuracy(model, tokenizer, seq.split.neighbour[:neighbour_eval], device)
    row["world_acc"] = _accuracy(model, tokenizer, seq.split.world, device)
    return row


def _refusal_data(tokenizer, qa: Sequence[dict[str, Any]]):
    prompts = [prompt_text(r["question"], tokenizer) for r in qa]
    return encode_pairs(tokenizer, prompts, [IDK_ANSWERS[i % len(IDK_ANSWERS)] for i in range(len(qa))])


def gate_row(
    gated: GatedLM, tokenizer, seq: RequestSequence, done: int, retain_prompts: Sequence[str], work: nn.Module
) -> dict[str, float]:
    """After ``done`` requests: the mean gate weight on the forget prompts so far and on ``retain_prompts``, the
    gate's AUROCs (:func:`~unlearnkit.lm.continual.routing.gate_aurocs`; unrelated = the world questions,
    rewordings of the forget questions so far) and the adapters' subspace overlap — largest, mean, and the mean
    for random subspaces of the same sizes."""
    seen_qa = [r for q in seq.requests[:done] for r in q]
    seen = [prompt_text(r["question"], tokenizer) for r in seen_qa]
    reworded = [prompt_text(q, tokenizer) for q in map(reworded_question, seen_qa) if q]
    unrelated = [prompt_text(r["question"], tokenizer) for r in seq.split.world]
    row = {
        "gate_forget": float(np.mean(gated.weights_for(seen))),
        "gate_retain": float(np.mean(gated.weights_for(retain_prompts))) if retain_prompts else float("nan"),
    }
    aucs = gate_aurocs(gated, seen, retain_prompts, unrelated, reworded)
    row.update({f"gate_auroc_{k}": v for k, v in aucs.items()})
    mean, rand = mean_subspace_overlap(work)
    row.update(subspace_overlap=max_subspace_overlap(work), subspace_overlap_mean=mean, subspace_overlap_random=rand)
    return row


def announce_line(row: dict[str, Any]) -> str:
    """One line of the gate's state after a request (printed by ``lm-continual`` as it goes)."""
    chosen = (
        f"detector lr {row['detector_lr']:g} × {row['detector_epochs']} epochs (separation of its calibration "
        f"prompts from name-swapped questions {row['detector_select']:.3f}); "
        if "detector_lr" in row
        else ""
    )
    return (
        f"after request {row['request']}: {chosen}gate AUROC forget/retain {row['gate_auroc_forget_retain']:.3f}, "
        f"forget/unrelated {row['gate_auroc_forget_unrelated']:.3f}, "
        f"reworded/unrelated {row['gate_auroc_reworded_unrelated']:.3f}; mean gate weight forget "
        f"{row['gate_forget']:.2f}, retain {row['gate_retain']:.2f}; "
        f"subspace overlap {row['subspace_overlap_mean']:.3f} "
        f"(random subspaces {row['subspace_overlap_random']:.3f}); forget acc {row['forget_acc']:.2f}, "
        f"retain acc {row['retain_acc']:.2f}"
    )


def columns(seq: RequestSequence) -> list[tuple[str, str]]:
    cols = [("method", "method"), ("request", "after request"), ("forget_acc", "forget acc (so far)")]
    cols += [(f"forget_acc_{n}", f"forget {n}") for n in seq.names]
    cols += [
        ("future_acc", "future acc"),
        ("retain_acc", "retain acc"),
        ("neighbour_acc", "neigh acc"),
        ("world_acc", "world acc"),
        ("gate_forget", "gate forget"),
        ("gate_retain", "gate retain"),
        ("gate_auroc_forget_retain", "gate AUROC f/r"),
        ("gate_auroc_forget_unrelated", "gate AUROC f/u"),
        ("gate_auroc_reworded_unrelated", "gate AUROC rw/u"),
        ("subspace_overlap_mean", "overlap"),
        ("subspace_overlap_random", "overlap random"),
        ("detector_lr", "detector lr"),
        ("detector_epochs", "detector epochs"),
        ("detector_select", "detector separation"),
        ("seconds", "seconds"),
    ]
    return cols


@dataclass
class ContinualRun:
    rows: list[dict[str, Any]]
    model: nn.Module
    detectors: list[ContrastiveEntropyDetector] = field(default_factory=list)


def run_continual(model: nn.Module, tokenizer, seq: RequestSequence, cfg: ContinualConfig) -> ContinualRun:
    """Apply ``cfg.method`` to ``seq``'s requests in order (``model`` is never modified) and evaluate after each
    one; returns the rows (one per request, plus request 0 = before any) and the final model (for O3 a
    :class:`GatedLM`)."""
    device = resolve_device(cfg.device)
    label = cfg.label()
    rows: list[dict[str, Any]] = []
    base = model.to(device).eval()
    row0 = {
        "method": label,
        "request": 0,
        "seconds": 0.0,
        **evaluate_step(base, tokenizer, seq, 0, retain_eval=cfg.retain_eval, device=device),
    }
    rows.append(row0)
    detectors: list[ContrastiveEntropyDetector] = []
    retain_prompts = [prompt_text(r["question"], tokenizer) for r in seq.split.retain_eval(cfg.retain_eval)]
    if cfg.method == "o3":
        work = copy.deepcopy(base)
        attach_lora(work, cfg.o3.rank, cfg.o3.alpha)
        current: nn.Module = GatedLM(work, tokenizer, fixed=1.0 if cfg.gate == "always" else None)
    else:
        current = base
    for k, qa in enumerate(seq.requests):
        with timed() as t:
            if cfg.method == "o3":
                train_request_adapter(
                    work, _refusal_data(tokenizer, qa), cfg.o3, seed=cfg.seed + k, device=device, progress=cfg.progress
                )
                if cfg.gate == "ood":
                    det, sel = select_detector(
                        base, tokenizer, [r["question"] for r in qa], cfg.detector, seed=cfg.seed + k, device=device
                    )
                    detectors.append(det)
                    chosen = {"detector_lr": sel.lr, "detector_epochs": sel.epochs, "detector_select": sel.auroc}
                current = GatedLM(work, tokenizer, detectors, fixed=1.0 if cfg.gate == "always" else None)
            else:
                hps = dict(cfg.hparams)
                if not cfg.with_retain:
                    hps.update(no_retain_hparams(cfg.method))
                hps.setdefault("seed", cfg.seed + k)
                res = unlearn_lm(
                    current,
                    tokenizer,
                    seq.request_split(k),
                    cfg.method,
                    device=device,
                    progress=cfg.progress,
                    **coerce_hparams(cfg.method, hps),
                )
                current = res.model.eval()
        row = {"method": label, "request": k + 1, "seconds": t.seconds}
        if cfg.method == "o3" and cfg.gate == "ood":
            row.update(chosen)
        row.update(evaluate_step(current, tokenizer, seq, k + 1, retain_eval=cfg.retain_eval, device=device))
        if isinstance(current, GatedLM):
            row.update(gate_row(current, tokenizer, seq, k + 1, retain_prompts, work))
            if cfg.announce:
                print(announce_line(row), flush=True)
        rows.append(row)
    return ContinualRun(rows, current, detectors)


@dataclass
class ContinualBenchConfig:
    """``lm-continual``: the requests (files, or the generated benchmark's ``n_requests × per_request`` people),
    the starting model (``model_path`` or the tiny model trained as ``lm-bench`` does) and the methods."""

    methods: Sequence[str] = ("o3",)
    with_retain: bool = False
    model_path: str | None = None
    request_files: Sequence[str] = ()
    retain_file: str | None = None
    neighbour_file: str | None = None
    world_file: str | None = None
    n_requests: int = 4
    per_request: int = 5
    n_people: int = 60
    n_holdout: int = 10
    epochs: int = 160
    seed: int = 0
    o3: dict[str, Any] = field(default_factory=dict)
    detector: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    tiny_hparams: bool = True
    retain_eval: int = 200
    cache_dir: str | None = None
    out_dir: str | None = None
    device: str | None = None
    progress: bool = False
    announce: bool = False
    tiny: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.request_files and not self.retain_file:
            raise ConfigError("with --requests files, give --retain (the QA used to measure retained knowledge)")
        if self.request_files and not self.model_path:
            raise ConfigError("with --requests files, give --model (a local Hugging Face causal LM folder)")
        for m in self.methods:
            if m != "o3":
                get_method_class(m, domain="lm")


def run_continual_bench(cfg: ContinualBenchConfig) -> tuple[ResultTable, list[ContinualRun]]:
    """The models, then every method in ``cfg.methods`` on the same request sequence; one table (written to
    ``cfg.out_dir`` as JSON/CSV, with a plot over the request index when matplotlib is installed)."""
    from ..bench import LMBenchConfig, train_pair
    from ..model import TinyLMConfig, load_causal_lm
    from ..training import LMTrainConfig
    from .requests import benchmark_requests, file_requests

    if cfg.out_dir:
        from ...validation import check_results_folder

        inputs = [*cfg.request_files, cfg.retain_file, cfg.neighbour_file, cfg.world_file, cfg.model_path]
        check_results_folder(cfg.out_dir, inputs=[*inputs, cfg.cache_dir])
    device = resolve_device(cfg.device)
    rows: list[dict[str, Any]] = []
    runs: list[ContinualRun] = []
    meta: dict[str, Any] = {"config": asdict(cfg)}
    user = bool(cfg.model_path)
    if cfg.request_files:
        seq = file_requests(cfg.request_files, cfg.retain_file, neighbour=cfg.neighbour_file, world=cfg.world_file)
        model, tok = load_causal_lm(cfg.model_path, device=device)
    else:
        seq = benchmark_requests(
            cfg.n_requests, cfg.per_request, n_people=cfg.n_people, n_holdout=cfg.n_holdout, seed=cfg.seed
        )
        bench_cfg = LMBenchConfig(
            n_people=cfg.n_people,
            n_holdout=cfg.n_holdout,
            n_readers=0,
            seed=cfg.seed,
            model_path=cfg.model_path,
            tiny=TinyLMConfig(**cfg.tiny),
            train=LMTrainConfig(epochs=cfg.epochs),
            methods=[],
            cache_dir=cfg.cache_dir,
            device=cfg.device,
            progress=cfg.progress,
        )
        pair = train_pair(bench_cfg, seq.split)
        model, tok = pair.original, pair.tokenizer
        ref = evaluate_step(pair.retain_only, tok, seq, len(seq.requests), retain_eval=cfg.retain_eval, device=device)
        rows.append({"method": "retain-only", "request": len(seq.requests), **ref})
        meta["train"] = pair.info
    for name in cfg.methods:
        o3_kw = {**(TINY_O3 if cfg.tiny_hparams and not user else {}), **cfg.o3}
        det_kw = detector_settings(cfg.detector, tiny=cfg.tiny_hparams and not user)
        hps = dict(cfg.hparams.get(name, {}))
        if name != "o3" and cfg.tiny_hparams and not user:
            from ..bench import TINY_HPARAMS

            hps = {**TINY_HPARAMS.get(name, {}), **hps}
        ccfg = ContinualConfig(
            method=name,
            with_retain=cfg.with_retain,
            o3=O3Config(**o3_kw),
            detector=DetectorConfig(**det_kw),
            hparams=hps,
            retain_eval=cfg.retain_eval,
            seed=cfg.seed,
            device=cfg.device,
            progress=cfg.progress,
            announce=cfg.announce,
        )
        if name == "o3":
            meta["o3"] = {"adapters": ccfg.o3.to_dict(), "detector": ccfg.detector.to_dict()}
        run = run_continual(model, tok, seq, ccfg)
        runs.append(run)
        rows += run.rows
    title = f"Continual LM unlearning: {len(seq.requests)} requests ({', '.join(seq.names)}), {device}"
    meta["requests"] = {n: len(q) for n, q in zip(seq.names, seq.requests)}
    table = ResultTable(title, rows, columns(seq), meta)
    if cfg.out_dir:
        from ...outputs import staged_folder

        with staged_folder(cfg.out_dir, replace=True) as staging:  # the whole folder at once, nothing stale
            table.write(staging)
            plot_continual(table, staging / "continual.png")
    return table, runs


def plot_continual(table: ResultTable, path: str | Path) -> Path | None:
    """Forget (so far) and retain accuracy over the request index, one line per method; ``None`` (nothing
    written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    methods = [m for m in dict.fromkeys(r["method"] for r in table.rows) if m != "retain-only"]
    for ax, key, title in (
        (axes[0], "forget_acc", "forget acc (requests so far)"),
        (axes[1], "retain_acc", "retain acc"),
    ):
        for m in methods:
            pts = [(r["request"], r[key]) for r in table.rows if r["method"] == m and r.get(key) == r.get(key)]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m)
        for r in table.rows:
            if r["method"] == "retain-only":
                ax.axhline(r[key], color="grey", linestyle="--", label="retain-only")
        ax.set_xlabel("request")
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
