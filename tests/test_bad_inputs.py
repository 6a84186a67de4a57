"""Bad inputs, from the command line and the Python API: each ends in an ``UnlearnkitError`` subclass whose
message names the problem and the fix (exit code 2 and no traceback on the command line), with nothing
written, nothing half-written and no earlier result lost."""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import unlearnkit as uk
from unlearnkit.bench import BenchConfig, run_bench
from unlearnkit.cli import main
from unlearnkit.data.cifar import read_cifar, write_cifar_batch
from unlearnkit.data.tensors import Batches
from unlearnkit.engine import LossWatch, Phase, Recipe, train
from unlearnkit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DivergenceError,
    ForgetSpecError,
    ModelError,
    UnlearnkitError,
)
from unlearnkit.losses import cross_entropy
from unlearnkit.methods.base import Method
from unlearnkit.methods.context import Outcome
from unlearnkit.workflow import train_checkpoint

from .conftest import state_equal


def leftovers(folder: Path) -> list[str]:
    """Temporary or set-aside folders a failed write could leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A one-epoch digits original checkpoint, shared read-only by the command-line cases."""
    out = tmp_path_factory.mktemp("ckpt") / "orig"
    train_checkpoint(out, recipe=Recipe(epochs=1, lr=0.05, batch_size=64), progress=False)
    return out


@pytest.fixture
def sets(digits, random_split):
    return random_split.forget(digits.train), random_split.retain(digits.train)


# ---- the Python API --------------------------------------------------------------------------------------
def _labels_plus(n):
    return lambda f, r: ((f.x, f.y + n), r)


API_CASES = {
    # stop="budget": a probed run may find the original already at its target and train nothing
    "ga-diverges": ("ga", {"lr": 1e6, "stop": "budget"}, None, DivergenceError, "smaller learning rate"),
    "ft-diverges": ("ft", {"lr": 1e6, "epochs": 1}, None, DivergenceError, "lr="),
    "weight-decay-nan": ("ft", {"weight_decay": float("nan")}, None, ConfigError, "finite"),
    "lr-inf": ("ga", {"lr": float("inf")}, None, ConfigError, "finite"),
    "alpha-nan": ("l1-sparse", {"alpha": float("nan")}, None, ConfigError, "finite"),
    "labels-too-big-ga": ("ga", {}, _labels_plus(10), DataError, r"outside \[0, 10\)"),
    "labels-too-big-ft": ("ft", {"epochs": 1}, _labels_plus(10), DataError, r"outside \[0, 10\)"),
    "labels-negative": ("rl", {"epochs": 1}, _labels_plus(-10), DataError, "relabel"),
    "labels-fractional": ("ga", {}, lambda f, r: ((f.x, f.y.float() + 0.5), r), DataError, "whole class"),
    "labels-one-hot": (
        "ga",
        {},
        lambda f, r: ((f.x, torch.nn.functional.one_hot(f.y, 10)), r),
        DataError,
        "argmax",
    ),
    "labels-bool": ("ga", {}, lambda f, r: ((f.x, f.y > 4), r), DataError, "integer class"),
    "inputs-nan": ("ga", {}, lambda f, r: ((torch.full_like(f.x, float("nan")), f.y), r), DataError, "NaN"),
    "inputs-wrong-shape": ("ga", {}, lambda f, r: ((f.x.flatten(1), f.y), r), ModelError, "shaped"),
    "forget-in-retain": (
        "ft",
        {"epochs": 1},
        lambda f, r: (f, (torch.cat([r.x, f.x[:3]]), torch.cat([r.y, f.y[:3]]))),
        ForgetSpecError,
        "also in the retain set",
    ),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_refuses(case, original, sets):
    method, hps, edit, err, match = API_CASES[case]
    forget, retain = sets
    if edit is not None:
        forget, retain = edit(forget, retain)
    before = {k: v.clone() for k, v in original.state_dict().items()}
    with pytest.raises(err, match=match):
        uk.unlearn(original, forget, retain, method, progress=False, **hps)
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())


def test_api_num_classes_contradicting_the_model(original, sets):
    with pytest.raises(ModelError, match="returns 10 logits"):
        uk.unlearn(original, *sets, "ga", num_classes=5, progress=False)


@pytest.mark.parametrize("what", ["float64-inputs", "float64-model", "int32-labels", "float-labels"])
def test_api_casts_what_is_safe(what, original, sets):
    """Inputs and labels that convert without changing meaning are converted, not refused."""
    forget, retain = sets
    model = original.double() if what == "float64-model" else original
    if what == "float64-inputs":
        forget, retain = (forget.x.double(), forget.y), (retain.x.double(), retain.y)
    elif what == "int32-labels":
        forget, retain = (forget.x, forget.y.int()), (retain.x, retain.y.int())
    elif what == "float-labels":
        forget, retain = (forget.x, forget.y.double()), (retain.x, retain.y.double())
    method = "bs" if what == "float64-model" else "ga"  # bs builds float32 tensors of its own
    res = uk.unlearn(model, forget, retain, method, epochs=1, progress=False)
    p = next(res.model.parameters())
    assert p.dtype == (torch.float64 if what == "float64-model" else torch.float32)
    assert all(bool(torch.isfinite(t).all()) for t in res.model.parameters())
    assert not state_equal(res.model.to(next(model.parameters()).dtype), model)  # it did unlearn


def test_engine_stops_at_the_step_where_the_loss_explodes(original, digits):
    """The engine checks every step's loss: the run stops at the first exploded step, not at the epoch's end."""
    batches = Batches(digits.train, 64, seed=0)
    with pytest.raises(DivergenceError, match=r"train diverged at epoch 1, step \d+: the loss is") as info:
        train(original, Phase("p", batches, cross_entropy), Recipe(epochs=1, lr=1e8, weight_decay=0.0), progress=False)
    step = int(re.search(r"step (\d+)", str(info.value)).group(1))
    assert step < len(batches) and "lr=1e+07" in str(info.value)


def test_loss_watch_on_an_accelerator_reads_a_window_and_names_the_first_bad_step():
    """Off the CPU the losses are read every `every` steps (no sync per step); the error still names the step."""
    watch = LossWatch(torch.device("meta"), desc="ft", lr=0.1, every=4)
    losses = [1.0, 0.9, 0.8, 0.7, 0.6, float("nan"), 1e30, 0.5]
    for step, value in enumerate(losses[:7]):
        watch.add(torch.tensor(value), epoch=0, step=step)  # steps 0-3 fine; the bad 5 and 6 wait in the window
    with pytest.raises(DivergenceError, match=r"ft diverged at epoch 1, step 6: the loss is nan"):
        watch.flush()
    cpu = LossWatch(torch.device("cpu"), desc="ft", lr=0.1, every=4)
    with pytest.raises(DivergenceError, match="step 1: the loss is inf"):
        cpu.add(torch.tensor(float("inf")), epoch=0, step=0)  # the CPU checks at once


@dataclass(kw_only=True, frozen=True)
class _Blowup(Method):
    """A method that leaves every weight finite but makes the outputs overflow (no training step to check)."""

    name = "blowup"

    def run(self, model, request, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1e12)
        return Outcome(model)


def test_outputs_that_overflow_are_divergence(original, sets):
    with pytest.raises(DivergenceError, match="blowup diverged: its outputs reach"):
        uk.unlearn(original, *sets, _Blowup(), progress=False)


def test_recipe_refuses_non_finite():
    with pytest.raises(ConfigError, match="finite"):
        Recipe(weight_decay=float("nan"))
    with pytest.raises(ConfigError, match="finite"):
        Recipe(lr=float("inf"))


@pytest.mark.parametrize(
    "content,err",
    [("[1, 2, [3]]", "flat list"), ('[1, "a"]', "integers"), ("[[1, 2], [3, 4]]", "flat list")],
    ids=["nested", "mixed", "2-d"],
)
def test_nested_index_json(tmp_path, digits, content, err):
    f = tmp_path / "ids.json"
    f.write_text(content)
    with pytest.raises(ForgetSpecError, match=err):
        uk.parse_forget(f"indices:{f}", digits.train.y)


@pytest.mark.parametrize("spec,count", [("random:1e2", 100), ("random:100.0", 100), ("random:0.1", 144)])
def test_random_count_written_as_float(digits, spec, count):
    assert len(uk.parse_forget(spec, digits.train.y).forget_idx) == count


@pytest.mark.parametrize("spec", ["random:1.5", "random:nan", "random:inf", "random:-3"])
def test_random_spec_refused(digits, spec):
    with pytest.raises(ForgetSpecError, match="random:"):
        uk.parse_forget(spec, digits.train.y)


# ---- CIFAR pickles -----------------------------------------------------------------------------------------
class _Payload:
    """A pickle that runs code when loaded: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def _cifar_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(folder / name, rng.integers(0, 255, (4, 3, 32, 32), dtype=np.uint8), np.arange(4) % 2)
    return folder


@pytest.mark.parametrize("kind", ["code", "list", "truncated"])
def test_cifar_pickle_refused(tmp_path, kind):
    folder = _cifar_folder(tmp_path)
    marker = tmp_path / "marker"
    if kind == "code":
        batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 0, 1], b"x": _Payload(marker)}
        (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    elif kind == "list":
        (folder / "data_batch_1").write_bytes(pickle.dumps([1, 2, 3]))
    else:
        (folder / "data_batch_1").write_bytes((folder / "data_batch_2").read_bytes()[:100])
    with pytest.raises(DataError, match="data_batch_1"):
        read_cifar("cifar10", tmp_path)
    assert not marker.exists()


def test_cifar_pickle_protocols_still_read(tmp_path):
    folder = _cifar_folder(tmp_path)
    data = np.arange(4 * 3072, dtype=np.uint8).reshape(4, 3072)
    for proto in (2, 5):
        (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": data, b"labels": [1, 0, 1, 0]}, protocol=proto))
        x, y, *_ = read_cifar("cifar10", tmp_path)
        assert np.array_equal(x[:4].reshape(4, -1), data) and y[:4].tolist() == [1, 0, 1, 0]


# ---- checkpoints -------------------------------------------------------------------------------------------
def _damage(folder: Path, how: str, source: Path) -> None:
    w, m = folder / "model.safetensors", folder / "meta.json"
    meta = json.loads((source / "meta.json").read_text())
    if how == "truncated":
        w.write_bytes((source / "model.safetensors").read_bytes()[:100])
    elif how == "empty":
        w.write_bytes(b"")
    elif how == "pickle":
        w.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    elif how == "meta-list":
        m.write_text("[1, 2]")
    elif how == "meta-binary":
        m.write_bytes(bytes(range(256)))
    elif how == "meta-no-input-shape":
        del meta["model"]["input_shape"]
        m.write_text(json.dumps(meta))
    elif how == "meta-missing":
        m.unlink()


DAMAGES = ["truncated", "empty", "pickle", "meta-list", "meta-binary", "meta-no-input-shape", "meta-missing"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_checkpoint(tmp_path, ckpt, how):
    folder = tmp_path / "ck"
    folder.mkdir()
    for f in ckpt.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    _damage(folder, how, ckpt)
    with pytest.raises(CheckpointError, match=str(folder)):
        uk.load(folder)


def test_save_is_atomic_as_a_pair(tmp_path, original, monkeypatch):
    """A save that fails half-way (here: while writing meta.json) leaves the earlier checkpoint intact."""
    uk.save(original, tmp_path / "ck", {"v": 1})
    before = (tmp_path / "ck" / "model.safetensors").read_bytes()
    real = Path.write_text

    def broken(self, *a, **k):
        if self.name == "meta.json":
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", broken)
    with torch.no_grad():
        next(original.parameters()).add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        uk.save(original, tmp_path / "ck", {"v": 2}, overwrite=True)
    monkeypatch.undo()
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == before
    assert json.loads((tmp_path / "ck" / "meta.json").read_text()) == {"v": 1}
    assert leftovers(tmp_path) == []


def test_interrupted_replacement_is_recovered(tmp_path, original):
    """A crash between setting the old folder aside and renaming the new one in leaves the old one found."""
    uk.save(original, tmp_path / "ck", {"v": 1})
    os.replace(tmp_path / "ck", tmp_path / ".ck.old-abc")
    assert uk.load(tmp_path / "ck", model=original)[1] == {"v": 1}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["", "nonempty"])
def test_save_refuses_bad_folders(tmp_path, original, where):
    target = tmp_path / "other"
    if where:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="empty|not a checkpoint"):
        uk.save(original, target if where else "", {})
    if where:
        assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("meta", [{"kind": "unlearned"}, {}])
def test_save_never_replaces_an_original(tmp_path, original, meta):
    """Python's save(overwrite=True) keeps the rule the CLI has: an original is only ever replaced by an original."""
    ck = tmp_path / "orig"
    uk.save(original, ck, {"kind": "original", "v": 1})
    before = (ck / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="original checkpoint"):
        uk.save(original, ck, meta, overwrite=True)
    assert (ck / "model.safetensors").read_bytes() == before
    assert json.loads((ck / "meta.json").read_text())["v"] == 1
    uk.save(original, ck, {"kind": "original", "v": 2}, overwrite=True)  # rebuilding an original is allowed
    assert json.loads((ck / "meta.json").read_text())["v"] == 2


def test_damaged_cache_entry_is_rebuilt(tmp_path, capsys):
    cfg = dict(train_subset=200, recipe=Recipe(epochs=1, lr=0.05, batch_size=64), methods=("ft",), mia=False)
    cfg.update(progress=False, cache_dir=str(tmp_path / "cache"), hparams={"ft": {"epochs": 1}})
    first = run_bench(BenchConfig(**cfg))
    entry = next((tmp_path / "cache" / "originals").iterdir())
    (entry / "meta.json").unlink()
    second = run_bench(BenchConfig(**cfg))
    err = capsys.readouterr().err
    assert f"cache entry {entry} is damaged" in err and "rebuilding it" in err
    assert (entry / "meta.json").is_file() and state_equal(first.original, second.original)


def test_bench_zero_epochs_caches_nothing(tmp_path):
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        run_bench(BenchConfig(recipe=Recipe(epochs=0), cache_dir=str(tmp_path / "cache"), progress=False))
    assert not (tmp_path / "cache").exists()


def test_bench_keeps_rows_of_other_methods_when_one_diverges(tmp_path):
    cfg = BenchConfig(
        train_subset=200,
        recipe=Recipe(epochs=2, lr=0.05, batch_size=64),
        methods=("ga", "ft"),
        hparams={"ga": {"lr": 1e6}},
        mia=False,
        progress=False,
        stop="budget",  # a probed run may find the original already at its target and train nothing
        cache_dir=str(tmp_path / "cache"),
        out_dir=str(tmp_path / "run"),
    )
    run = run_bench(cfg)
    rows = {r["method"]: r for r in run.table.rows}
    assert "diverged" in rows["ga"]["failed"] and "ua" not in rows["ga"]
    assert "failed" not in rows["ft"] and all(math.isfinite(rows["ft"][k]) for k in ("ua", "ra", "ta", "avg_gap"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["retrain", "original", "ga", "ft"]
    assert saved["meta"]["threads"] == torch.get_num_threads() and saved["meta"]["torch"] == torch.__version__


# ---- the command line: exit 2, one line, nothing written ---------------------------------------------------
def _cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


def _unlearn(ckpt: Path, out: str) -> list[str]:
    return ["unlearn", "--model", str(ckpt), "--forget", "random:0.1", "--method", "ga", "--out", out, "--no-progress"]


CLI_CASES = {
    "out-empty": (lambda c, t: _unlearn(c, ""), "empty"),
    "out-is-the-model": (lambda c, t: _unlearn(c, str(c)), "original"),
    "out-is-another-original": (lambda c, t: _unlearn(c, str(t / "orig2")) + ["--overwrite"], "original"),
    "out-under-a-file": (lambda c, t: _unlearn(c, str(t / "file.txt" / "x")), "not writable|not a folder"),
    "out-nonempty-folder": (lambda c, t: _unlearn(c, str(t / "mine")), "not a checkpoint"),
    "hp-nan": (lambda c, t: _unlearn(c, str(t / "u")) + ["--hp", "lr=NaN"], "finite"),
    "hp-diverges": (lambda c, t: _unlearn(c, str(t / "u")) + ["--hp", "lr=1e6"], "diverged"),
    "nested-indices": (
        lambda c, t: ["unlearn", "--model", str(c), "--forget", f"indices:{t / 'ids.json'}", "--out", str(t / "u")],
        "flat list",
    ),
    "evaluate-truncated": (lambda c, t: ["evaluate", "--model", str(t / "bad"), "--forget", "class:1"], "damaged"),
    "evaluate-no-dataset": (
        lambda c, t: ["evaluate", "--model", str(t / "nodata"), "--forget", "class:1"],
        "name its dataset",
    ),
    "bench-epochs-0": (lambda c, t: ["bench", "--epochs", "0", "--out", str(t / "run")], "epochs must be >= 1"),
    "bench-out-is-a-file": (
        lambda c, t: ["bench", "--epochs", "1", "--out", str(t / "file.txt"), "--no-progress"],
        "not a folder",
    ),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_refuses(case, ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    orig2 = tmp_path / "orig2"
    orig2.mkdir()
    for f in ckpt.iterdir():
        (orig2 / f.name).write_bytes(f.read_bytes())
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    (tmp_path / "ids.json").write_text("[1, 2, [3]]")
    for name, how in (("bad", "truncated"), ("nodata", None)):
        (tmp_path / name).mkdir()
        for f in ckpt.iterdir():
            (tmp_path / name / f.name).write_bytes(f.read_bytes())
        if how:
            _damage(tmp_path / name, how, ckpt)
    (tmp_path / "nodata" / "meta.json").write_text(
        json.dumps({**json.loads((ckpt / "meta.json").read_text()), "dataset": None})
    )
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    model_bytes = (ckpt / "model.safetensors").read_bytes()
    args, match = CLI_CASES[case]
    rc, err = _cli(args(ckpt, tmp_path), capsys)
    assert rc == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(match, err), err
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before, sorted(set(after) ^ set(before))  # nothing written, nothing changed
    assert (ckpt / "model.safetensors").read_bytes() == model_bytes


def test_cli_hp_seed(ckpt, tmp_path, capsys):
    out = tmp_path / "u"
    rc = main(_unlearn(ckpt, str(out)) + ["--hp", "seed=3", "--hp", "epochs=1", "--seed", "1"])
    assert rc == 0, capsys.readouterr().err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["hparams"]["seed"] == 3
    assert meta["forget"]["n_forget"] == 144


def test_cli_ctrl_c_exits_130_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    import unlearnkit.bench as bench

    real = bench.unlearn

    def interrupted(*a, **k):
        if a[3] == "ft":
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(bench, "unlearn", interrupted)
    rc, err = _cli(
        ["bench", "--train-subset", "200", "--epochs", "1", "--methods", "ft", "--out", str(tmp_path / "run")]
        + ["--no-progress"],
        capsys,
    )
    assert rc == 130 and err.strip() == "interrupted; nothing half-written was kept"
    assert not (tmp_path / "run").exists() and leftovers(tmp_path) == []


def test_every_error_is_an_unlearnkit_error():
    for err in (CheckpointError, ConfigError, DataError, DivergenceError, ForgetSpecError, ModelError):
        assert issubclass(err, UnlearnkitError)
