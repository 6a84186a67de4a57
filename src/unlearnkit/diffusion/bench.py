"""``diff-bench``: original, retrain (trained without the concept; ``retrain=False`` skips it) and every erasure
method on one miniature text-to-image model — UA (replaced / destroyed), IRA, CRA, Fréchet distance with its
real-vs-real noise floor, per-prompt attack success before/after UnlearnDiffAtk, seconds, peak memory, storage —
plus PNG sample grids."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..methods.base import get_method_class
from ..outputs import staged_folder
from ..result_views import TableViews
from ..results import ResultTable
from ..runtime import RunSettings, resolve_device, seed_everything
from ..validation import check_results_folder
from .attacks import unlearndiffatk
from .concepts import ConceptData, ConceptSpec, load_concept_data, parse_concept
from .evaluate import GenerationEval, SamplingConfig, evaluate_erasure
from .evaluators import Evaluators, cached_evaluators
from .images import save_grid
from .inception import InceptionFID
from .metrics import changed_storage_mb
from .one_step import is_one_step, speed_against
from .request import unlearn_concept
from .training import DiffusionTrainConfig, cached_model

DEFAULT_DIFF_METHODS = ("ga", "rl", "salun", "esd-x", "esd-u", "concept-correction", "advunlearn")

#: The published settings are for Stable Diffusion (~860 M parameters, lr 1e-5, 1000 steps, batch 1); this
#: miniature (~0.15 M parameters) needs larger steps and fewer of them. ``diff-bench`` uses these unless
#: ``hparams`` overrides them; the methods' own defaults stay the published ones.
MINIATURE_HPARAMS: dict[str, dict[str, Any]] = {
    "ga": {"steps": 30, "lr": 5e-5, "batch_size": 16},
    "rl": {"steps": 200, "lr": 5e-4, "batch_size": 16},
    "salun": {"steps": 200, "lr": 1e-3, "batch_size": 16},
    "esd-x": {"steps": 200, "lr": 1.5e-4, "batch_size": 8, "ddim_steps": 25},
    "esd-x-strict": {"steps": 200, "lr": 1.5e-4, "batch_size": 8, "ddim_steps": 25},
    "esd-u": {"steps": 200, "lr": 3e-5, "batch_size": 8, "ddim_steps": 25},
    "esd": {"steps": 200, "lr": 1.5e-4, "batch_size": 8, "ddim_steps": 25},
    # DoCo: the published 500 warm-up steps of 1000 scaled to 100 of 200
    "concept-correction": {"steps": 200, "warmup": 100, "lr": 1e-3, "batch_size": 16, "disc_width": 32},
    "concept-correction-mse": {"steps": 200, "lr": 1e-3, "batch_size": 16},
    # SFD: the published 50 000 steps of batch 128 at lr 1e-5 (forget coefficients 0.01) scaled to 400 steps of
    # 16 + 16 prompts at lr 3e-4 (forget coefficients 0.3); the teacher score guided as the evaluation samples it
    "sfd": {
        "steps": 400,
        "lr": 3e-4,
        "fake_lr": 3e-4,
        "batch_size": 16,
        "g_forget_coef": 0.3,
        "sg_forget_coef": 0.3,
        "teacher_guidance": 2.0,
        # the last iterate: at the reference's EMA 0.9999, 400 steps would leave the average at the original
        "ema_decay": 0.0,
    },
    # AdvUnlearn: the published 200 warm-up steps of 1000 scaled to 40 of 200; 5 attack steps every 4 steps
    "advunlearn": {
        "steps": 200,
        "lr": 1e-3,
        "batch_size": 8,
        "ddim_steps": 25,
        "warmup": 40,
        "attack_steps": 5,
        "attack_every": 4,
        "k": 3,
    },
}

COLUMNS = (
    ("model", "model"),
    ("ua", "UA↑ (replaced)"),
    ("ua_destroyed", "UA destr"),
    ("ira", "IRA↑"),
    ("cra", "CRA↑"),
    ("fd_eval", "FD(eval)↓"),
    ("fd_floor", "FD floor"),
    ("quality", "quality"),
    ("fid_inception", "FID"),
    ("asr_synonym", "ASR syn↓"),
    ("asr_attack_before", "ASR pre↓"),
    ("asr_attack", "ASR atk↓"),
    ("seconds", "seconds"),
    ("peak_mem_mb", "peak MB"),
    ("storage_mb", "stored MB"),
    ("speedup", "sampling ×"),
)


def check_method_hparams(methods: Sequence[str], hparams: dict[str, dict[str, Any]]) -> None:
    """Every method is a registered diffusion method, and every ``METHOD.NAME`` hyper-parameter names a method
    that runs and one of its hyper-parameters (shared by ``diff-bench`` and its grid mode)."""
    for name in methods:
        get_method_class(name, "diffusion")
    for name, hps in hparams.items():
        if name not in methods:
            raise ConfigError(f"hyper-parameters given for {name!r}, which is not among the methods run")
        cls = get_method_class(name, "diffusion")
        bad = sorted(set(hps) - set(cls.hparam_names()))
        if bad:
            raise ConfigError(f"{name} has no hyper-parameter {bad}; valid: {', '.join(cls.hparam_names())}")


def miniature_hparams(name: str, hparams: dict[str, dict[str, Any]], seed: int) -> dict[str, Any]:
    """A method's hyper-parameters on the miniature: :data:`MINIATURE_HPARAMS`, then the user's, then ``seed``."""
    hps = dict(MINIATURE_HPARAMS.get(name, {}))
    hps.update(hparams.get(name, {}))
    hps.setdefault("seed", seed)
    return hps


@dataclass
class DiffBenchConfig(RunSettings):
    """Everything that defines a ``diff-bench`` run."""

    dataset: str = "digits"
    concept: str = "object:three"
    methods: Sequence[str] = DEFAULT_DIFF_METHODS
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    attack: bool = True
    attack_k: int = 3
    attack_rounds: int = 5
    attack_steps: int = 10
    attack_seeds: int = 4
    attack_lr: float = 0.01
    retrain: bool = True
    #: a local TorchScript Inception file (clean-fid's ``inception-2015-12-05.pt``): adds ``fid_inception``
    inception: str | None = None
    #: evaluate the original (and retrain) rows; False runs only the methods (to split a bench over processes)
    baselines: bool = True
    #: rows that get UnlearnDiffAtk (None: every row)
    attack_models: Sequence[str] | None = None

    def __post_init__(self) -> None:
        check_method_hparams(self.methods, self.hparams)

    def method_hparams(self, name: str) -> dict[str, Any]:
        return miniature_hparams(name, self.hparams, self.seed)


@dataclass
class DiffBenchRun(TableViews):
    """The table, the models (original, retrain, each method) and the written PNG grids."""

    table: ResultTable
    models: dict[str, nn.Module]
    grids: dict[str, Path] = field(default_factory=dict)


class PeakMemory:
    """Peak resident memory above the starting level while the block runs (CUDA: peak allocated bytes)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.mb = device, 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):  # pragma: no cover - non-Linux
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._peak = self._rss()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.mb = max(0, self._peak - self._base) / 2**20


def _row(name: str, ev: GenerationEval, attack: float | None, seconds: float, mem: float | None, storage: float):
    return {
        "model": name,
        **ev.metrics,
        "asr_attack": attack,
        "seconds": seconds,
        "peak_mem_mb": mem,
        "storage_mb": storage,
    }


def grid_rows(ev: GenerationEval, data: ConceptData, concept: ConceptSpec, neighbours: int = 3) -> list[torch.Tensor]:
    """Rows for a sample grid: the erased concept in the first three settings of the other axis, then
    ``neighbours`` other concepts of the same axis in the first setting."""
    rows, n_other = [], len(data.names(concept.other_axis))
    k = len(data.names(concept.axis))

    def key(a: int, b: int) -> tuple[int, int]:
        return (a, b) if concept.axis == "object" else (b, a)

    for j in range(min(3, n_other)):
        rows.append(ev.by_prompt[key(concept.index, j)])
    for d in range(1, neighbours + 1):
        rows.append(ev.by_prompt[key((concept.index + d) % k, 0)])
    return rows


def run_diff_bench(cfg: DiffBenchConfig) -> DiffBenchRun:
    """Train (or load from cache) the original and the retrained model, apply every method, evaluate all."""
    if cfg.out_dir:
        check_results_folder(cfg.out_dir, inputs=[cfg.data_dir, cfg.cache_dir])
    dev = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = load_concept_data(cfg.dataset, train_subset=cfg.train_subset, data_dir=cfg.data_dir, seed=cfg.seed)
    test = load_concept_data(cfg.dataset, split="test", data_dir=cfg.data_dir, seed=cfg.seed)
    concept = parse_concept(cfg.concept, data)
    key = hashlib.sha256(f"{cfg.dataset}|{cfg.train_subset}|{len(data)}".encode()).hexdigest()[:12]
    evaluators = cached_evaluators(
        data, test, key=key, cache_dir=cfg.cache_dir, seed=cfg.seed, device=dev, progress=cfg.progress
    )
    original, meta = cached_model(data, cfg.train, cache_dir=cfg.cache_dir, device=dev, progress=cfg.progress)
    models: dict[str, nn.Module] = {"original": original}
    seconds = {"original": float(meta.get("seconds", float("nan")))}
    if cfg.retrain:
        retrained, rmeta = cached_model(
            data, cfg.train, exclude=concept, cache_dir=cfg.cache_dir, device=dev, progress=cfg.progress
        )
        models["retrain"] = retrained
        seconds["retrain"] = float(rmeta.get("seconds", float("nan")))
    rows: list[dict[str, Any]] = []
    evals: dict[str, GenerationEval] = {}
    inception = InceptionFID(cfg.inception, device=dev) if cfg.inception else None

    def judge(name: str, model: nn.Module, secs: float, mem: float | None) -> None:
        ev = evaluate_erasure(model, data, concept, evaluators, cfg.sampling, inception=inception)
        atk = None
        extra: dict[str, Any] = {}
        if cfg.attack and (cfg.attack_models is None or name in cfg.attack_models):
            res = _attack(model, data, concept, evaluators, cfg)
            atk = res.asr
            extra = {
                "asr_attack_before": res.asr_plain,
                "attack_instances": res.instances,
                "adversarial_prompts": res.prompts,
            }
        evals[name] = ev
        row = _row(name, ev, atk, secs, mem, changed_storage_mb(original, model))
        row.update(extra)
        rows.append(row)

    for name in list(models) if cfg.baselines else []:
        judge(name, models[name], seconds[name], None)
    for name in cfg.methods:
        with PeakMemory(dev) as mem:
            res = unlearn_concept(
                original, data, concept, name, device=dev, progress=cfg.progress, **cfg.method_hparams(name)
            )
        models[name] = res.model
        judge(name, res.model, res.seconds, mem.mb)
        rows[-1]["hparams"] = res.hparams
        if is_one_step(res.model):  # a one-step generator (sfd): images/s against the original's sampler
            rows[-1].update(speed_against(res.model, original, data, cfg.sampling))
    table = ResultTable(
        f"diff-bench {cfg.dataset}: erase {concept.axis} {concept.word!r} (UA/IRA/CRA/ASR in %)",
        rows,
        COLUMNS,
        meta={
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("train", "sampling")},
            "train": asdict(cfg.train),
            "sampling": asdict(cfg.sampling),
            "evaluator_test_accuracy": evaluators.test_accuracy,
            "device": str(dev),
            "torch_threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    grids: dict[str, Path] = {}
    if cfg.out_dir:
        out = Path(cfg.out_dir)
        with staged_folder(out, replace=True) as staging:  # the whole folder at once, nothing stale
            table.write(staging)
            overview = []
            for name, ev in evals.items():
                rows_ = grid_rows(ev, data, concept)
                save_grid(staging / f"samples-{name}.png", rows_)
                grids[name] = out / f"samples-{name}.png"
                overview.append(torch.cat([rows_[0], rows_[-3]]))
            save_grid(staging / "samples-overview.png", overview)
            grids["overview"] = out / "samples-overview.png"
    return DiffBenchRun(table, models, grids)


def _attack(model: nn.Module, data: ConceptData, concept: ConceptSpec, evaluators: Evaluators, cfg: DiffBenchConfig):
    return unlearndiffatk(
        model,
        data,
        concept,
        evaluators,
        k=cfg.attack_k,
        rounds=cfg.attack_rounds,
        iterations=cfg.attack_steps,
        lr=cfg.attack_lr,
        seeds_per_prompt=cfg.attack_seeds,
        ddim_steps=cfg.sampling.steps,
        guidance=cfg.sampling.guidance,
        seed=cfg.seed,
    )
