"""Inputs are validated up front and never executed: no pickle anywhere in the source, malformed arrays,
results files and settings end in one ``UnlearnkitError`` line, and every family's public entry points raise
that one error family for bad inputs."""

from __future__ import annotations

import ast
import errno
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import unlearnkit as uk
from unlearnkit.cli import main
from unlearnkit.engine import Recipe
from unlearnkit.errors import ConfigError, DataError, ModelError, UnlearnkitError

SRC = Path(__file__).resolve().parents[1] / "src" / "unlearnkit"

#: the one file allowed to use the pickle module: the CIFAR reader, whose unpickler builds only numpy arrays
#: and plain containers (tested in test_bad_inputs.test_cifar_pickle_refused)
PICKLE_ALLOWED = {"data/cifar.py"}
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def pickle_uses(source: str, rel: str) -> list[str]:
    """Every way ``source`` could unpickle: ``torch.load`` without ``weights_only=True``, ``np.load`` without
    ``allow_pickle=False``, a pickle-family import (outside :data:`PICKLE_ALLOWED`), ``from torch import load``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else None
            if name == "torch" and _keyword(node, "weights_only") is not True:
                found.append(f"{rel}:{node.lineno}: torch.load without weights_only=True")
            if name in ("np", "numpy") and _keyword(node, "allow_pickle") is not False:
                found.append(f"{rel}:{node.lineno}: np.load without allow_pickle=False")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("read_pickle", "from_pickle"):
                found.append(f"{rel}:{node.lineno}: {node.func.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in PICKLE_MODULES for m in mods) and rel not in PICKLE_ALLOWED:
                found.append(f"{rel}:{node.lineno}: imports {', '.join(mods)}")
            from_load = isinstance(node, ast.ImportFrom) and any(a.name == "load" for a in node.names)
            if from_load and node.module in ("torch", "numpy"):
                found.append(f"{rel}:{node.lineno}: from {node.module} import load")
    return found


def test_no_pickle_anywhere_in_the_source():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    found = [u for f in files for u in pickle_uses(f.read_text(encoding="utf-8"), f.relative_to(SRC).as_posix())]
    assert found == []


@pytest.mark.parametrize(
    "code",
    [
        "import torch\nx = torch.load(p)",
        "import torch\nx = torch.load(p, weights_only=False)",
        "import numpy as np\nx = np.load(p)",
        "import numpy\nx = numpy.load(p, allow_pickle=True)",
        "import pickle",
        "from joblib import load",
        "from torch import load",
    ],
)
def test_the_pickle_scan_catches(code):
    assert pickle_uses(code, "x.py")


def test_the_pickle_scan_accepts_safe_loads():
    code = "import torch, numpy as np\na = torch.load(p, weights_only=True)\nb = np.load(p, allow_pickle=False)"
    assert pickle_uses(code, "x.py") == []


# ---- GAN negatives from a file -----------------------------------------------------------------------------
def _write_npy(path: Path, how: str) -> None:
    good = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    if how == "empty-array":
        np.save(path, good[:0])
    elif how == "empty-file":
        path.write_bytes(b"")
    elif how == "object":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif how == "truncated":
        np.save(path, good)
        path.write_bytes(path.read_bytes()[:200])
    elif how == "header-only":
        np.save(path, good)
        path.write_bytes(path.read_bytes()[:20])
    elif how == "strings":
        np.save(path, np.array(["a", "b"]))
    elif how == "nan":
        np.save(path, np.full((4, 1, 8, 8), np.nan, dtype=np.float32))


NPY_CASES = {
    "empty-array": "empty array",
    "empty-file": "empty or unreadable",
    "object": "object array",
    "truncated": "not a complete .npy",
    "header-only": "not a complete .npy",
    "strings": "not numbers",
    "nan": "NaN",
}


@pytest.mark.parametrize("how", list(NPY_CASES))
def test_gan_negatives_npy_refused(tmp_path, how):
    from unlearnkit.gan.adapt_unlearn import load_negative_images

    path = tmp_path / "neg.npy"
    _write_npy(path, how)
    with pytest.raises(DataError, match=NPY_CASES[how]) as info:
        load_negative_images(path, (1, 8, 8))
    assert "\n" not in str(info.value)


def test_gan_negatives_good_npy_and_pt_are_read(tmp_path):
    from unlearnkit.gan.adapt_unlearn import load_negative_images

    x = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    np.save(tmp_path / "neg.npy", x)
    torch.save(torch.from_numpy(x), tmp_path / "neg.pt")
    a = load_negative_images(tmp_path / "neg.npy", (1, 8, 8))
    b = load_negative_images(tmp_path / "neg.pt", (1, 8, 8))
    assert a.shape == (4, 1, 8, 8) and torch.equal(a, b) and float(a.min()) == -1.0 and float(a.max()) == 1.0


class _Evil:
    """An object whose unpickling creates a file: proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_gan_negatives_pickled_code_never_runs(tmp_path, monkeypatch):
    """Even with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (which turns pickle back on wherever weights_only is
    not passed), a ``.pt`` of negatives holding code is refused without running it."""
    from unlearnkit.gan.adapt_unlearn import load_negative_images

    marker = tmp_path / "ran"
    torch.save({"x": _Evil(marker)}, tmp_path / "evil.pt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(DataError, match="weights_only=True"):
        load_negative_images(tmp_path / "evil.pt", (1, 8, 8))
    assert not marker.exists()


def test_indices_npy_empty_file_is_a_forget_spec_error(tmp_path, digits):
    (tmp_path / "ids.npy").write_bytes(b"")
    with pytest.raises(uk.ForgetSpecError, match="could not read indices"):
        uk.parse_forget(f"indices:{tmp_path / 'ids.npy'}", digits.train.y)


# ---- nonsense settings --------------------------------------------------------------------------------------
def test_training_an_original_with_zero_epochs_is_refused(tmp_path, digits):
    model = uk.create_model("mlp", digits.input_shape, digits.num_classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="epochs >= 1"):
        uk.train_model(model, digits.train, Recipe(epochs=0), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    from unlearnkit.workflow import train_checkpoint

    with pytest.raises(ConfigError, match="epochs >= 1"):
        train_checkpoint(tmp_path / "orig", recipe=Recipe(epochs=0), progress=False)
    assert not (tmp_path / "orig").exists()


def _cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    return rc, capsys.readouterr().err


def _one_line(rc: int, err: str) -> None:
    assert rc == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--epochs", "0"], "epochs >= 1"),
        (["--train-subset", "5", "--epochs", "1"], "smaller than the 10 classes"),
    ],
)
def test_cli_train_refuses_nonsense(tmp_path, capsys, extra, match):
    rc, err = _cli(["train", "--model", "mlp", "--out", str(tmp_path / "o"), "--no-progress"] + extra, capsys)
    _one_line(rc, err)
    assert match in err
    assert list(tmp_path.iterdir()) == []


def test_train_subset_smaller_than_the_classes_is_refused():
    with pytest.raises(DataError, match="10 classes of digits"):
        uk.load_dataset("digits", train_subset=9)
    assert len(uk.load_dataset("digits", train_subset=10).train) == 10


# ---- report on a malformed results.json ---------------------------------------------------------------------
RESULTS_CASES = {
    "a-list": ([{"method": "ft"}], "not an object with 'rows'"),
    "rows-an-object": ({"rows": {"ft": {"ua": 1.0}}}, "field 'rows'"),
    "row-a-string": ({"rows": ["ft"]}, r"rows\[0\] is a str"),
    "row-without-method": ({"rows": [{"ua": 1.0}]}, "field 'method'"),
    "metric-a-string": ({"rows": [{"method": "ft", "ua": 1.0}, {"method": "rl", "ua": "high"}]}, "field 'ua'"),
    "columns-flat": ({"rows": [{"method": "ft", "ua": 1.0}], "columns": ["method", "ua"]}, "field 'columns'"),
    "meta-a-list": ({"rows": [{"method": "ft", "ua": 1.0}], "meta": [1]}, "field 'meta'"),
    "title-a-list": ({"rows": [{"method": "ft", "ua": 1.0}], "title": ["x"]}, "field 'title'"),
    "not-utf8": (None, "UTF-8"),
    "empty-object": ({}, "field 'rows' is missing"),
    "unknown-shape": ({"methods": 5}, "unknown field 'methods'"),
}


@pytest.mark.parametrize("case", list(RESULTS_CASES))
def test_report_refuses_malformed_results(tmp_path, capsys, case):
    content, match = RESULTS_CASES[case]
    run = tmp_path / "run"
    run.mkdir()
    if content is None:
        (run / "results.json").write_bytes(b'{"rows": [{"method": "\xff\xfe"}]}')
    else:
        (run / "results.json").write_text(json.dumps(content))
    rc, err = _cli(["report", str(run)], capsys)
    _one_line(rc, err)
    assert re.search(match, err), err
    assert sorted(p.name for p in run.iterdir()) == ["results.json"]


def test_report_reads_a_well_formed_results_file(tmp_path):
    from unlearnkit.report.schema import check_results

    obj = {"rows": [{"method": "retrain", "ua": 1.0, "mia": None}], "columns": [["method", "method"]], "meta": {}}
    res = check_results(obj, "results.json")
    assert res.rows == obj["rows"] and res.columns == [("method", "method")] and res.title is None


# ---- evaluate ------------------------------------------------------------------------------------------------
def _eval_sets(digits):
    tr, te = digits.train, digits.test
    return {"forget": (tr.x[:40], tr.y[:40]), "retain": (tr.x[40:200], tr.y[40:200]), "test": (te.x[:80], te.y[:80])}


@pytest.mark.parametrize("where", ["forget", "retain", "test"])
def test_evaluate_refuses_nan_inputs(digits, where):
    sets = _eval_sets(digits)
    x, y = sets[where]
    x = x.clone()
    x[2, 0] = float("nan")
    sets[where] = (x, y)
    model = uk.create_model("mlp", digits.input_shape, digits.num_classes)
    with pytest.raises(DataError, match=f"{where}: the inputs of 1 example"):
        uk.evaluate(model, **sets)


def test_evaluate_refuses_nan_regression_targets(digits):
    sets = _eval_sets(digits)
    x, y = sets["retain"]
    sets["retain"] = (x, torch.where(torch.arange(len(y)) == 5, float("nan"), y.float()))
    with pytest.raises(DataError, match="retain: the labels or targets"):
        uk.evaluate(uk.create_model("mlp", digits.input_shape, 1), **sets, task="regression")


def test_evaluate_a_diverged_model_is_a_model_error(digits):
    model = uk.create_model("mlp", digits.input_shape, digits.num_classes)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(ModelError, match="NaN or infinite outputs on the forget set"):
        uk.evaluate(model, **_eval_sets(digits))
    with pytest.raises(ModelError, match="torch.nn.Module"):
        uk.evaluate("model.safetensors", **_eval_sets(digits))


# ---- a meta.json that lies about the model's sizes ----------------------------------------------------------
def _mlp_checkpoint(tmp_path: Path, hidden: list[int]) -> Path:
    model = uk.create_model("mlp", (1, 8, 8), 10, hidden=(16,))
    spec = {"name": "mlp", "input_shape": [1, 8, 8], "num_classes": 10, "kwargs": {"hidden": hidden}}
    return uk.save(model, tmp_path / "ckpt", {"kind": "unlearned", "model": spec})


@pytest.mark.parametrize(
    "hidden, match",
    [([4096], r"shaped \(4096, 64\) but the weights hold \(16, 64\)"), ([16, 16], "unexpected|lacks")],
)
def test_meta_sizes_are_checked_against_the_weights_before_building(tmp_path, monkeypatch, hidden, match):
    """The lying model is only ever built on the ``meta`` device: nothing of its size is allocated."""
    import unlearnkit.models as models

    ckpt = _mlp_checkpoint(tmp_path, hidden)
    built: list[str] = []
    real = models.create_model

    def recording(*a, **k):
        m = real(*a, **k)
        built.append(next(m.parameters()).device.type)
        return m

    monkeypatch.setattr(models, "create_model", recording)
    with pytest.raises(uk.CheckpointError, match=match) as info:
        uk.load(ckpt)
    assert "meta.json does not describe these weights" in str(info.value) and "\n" not in str(info.value)
    assert built == ["meta"]


def test_an_honest_meta_still_loads(tmp_path):
    model, meta = uk.load(_mlp_checkpoint(tmp_path, [16]))
    assert meta["model"]["kwargs"]["hidden"] == [16] and next(model.parameters()).device.type == "cpu"


# ---- empty sets ---------------------------------------------------------------------------------------------
def test_unlearn_with_an_empty_forget_set_is_a_project_error(digits):
    """``forget=(X[:0], y[:0])`` used to end in a raw RuntimeError from the overlap check."""
    model = uk.create_model("mlp", digits.input_shape, digits.num_classes)
    x, y = digits.train.x, digits.train.y
    with pytest.raises(uk.ForgetSpecError, match="forget set is empty"):
        uk.unlearn(model, (x[:0], y[:0]), (x[100:], y[100:]), "ga", progress=False)
    res = uk.unlearn(model, (x[:50], y[:50]), (x[:0], y[:0]), "ga", epochs=1, progress=False)  # empty retain: GA
    assert not torch.equal(next(res.model.parameters()), next(model.parameters()))
    for method in ("ft", "neggrad-plus", "scrub", "retrain", "l1-sparse"):  # they train on the retain set
        with pytest.raises(uk.ConfigError, match=rf"method '{method}' needs retain data but the retain set is empty"):
            uk.unlearn(model, (x[:50], y[:50]), (x[:0], y[:0]), method, epochs=1, progress=False)


def test_create_model_with_an_unknown_name_or_no_shape_is_a_config_error():
    with pytest.raises(uk.ConfigError, match="unknown model 'nope'; choose one of .*mlp"):
        uk.create_model("nope")
    with pytest.raises(uk.ConfigError, match="needs input_shape and num_classes"):
        uk.create_model("mlp")


# ---- a full disk or a file-size limit -------------------------------------------------------------------------
@pytest.mark.slow
def test_unlearn_under_a_file_size_limit_is_one_line(tmp_path):
    """A real ``ulimit -f`` in a subprocess: safetensors fails with EFBIG (as its own error type) while writing
    the unlearned model; the command prints one line, exits 2, and leaves no temporary folder behind."""
    import os
    import resource
    import subprocess
    import sys

    from unlearnkit.workflow import train_checkpoint

    orig = tmp_path / "orig"
    train_checkpoint(orig, model="mlp", recipe=Recipe(epochs=1, lr=0.05, batch_size=64), progress=False)
    limit = (orig / "model.safetensors").stat().st_size // 2

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(SRC.parent), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    args = ["unlearn", "--model", str(orig), "--forget", "class:3", "--method", "ga", "--out", str(tmp_path / "u")]
    proc = subprocess.run(
        [sys.executable, "-m", "unlearnkit.cli", *args, "--hp", "epochs=1", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not write") and "File too large" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orig"]


def _no_space(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["cache", "results"])
def test_bench_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch, where):
    import unlearnkit.checkpoint as checkpoint
    import unlearnkit.results as results

    if where == "cache":  # the cached original is the first thing bench writes
        monkeypatch.setattr(checkpoint, "save_file", _no_space)
    else:
        monkeypatch.setattr(results, "write_json", _no_space)
    cache, run = tmp_path / "cache", tmp_path / "run"
    args = ["bench", "--train-subset", "100", "--epochs", "1", "--methods", "ft", "--hp", "ft.epochs=1"]
    rc, err = _cli(args + ["--cache-dir", str(cache), "--out", str(run), "--no-progress"], capsys)
    _one_line(rc, err)
    assert "No space left on device" in err and "free disk space" in err
    assert not run.exists()
    left = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert left == []


def test_unlearn_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    """safetensors reports a full disk as its own error type, with the errno only in the text."""
    from safetensors import SafetensorError

    import unlearnkit.checkpoint as checkpoint
    from unlearnkit.workflow import train_checkpoint

    orig = tmp_path / "orig"
    train_checkpoint(orig, model="mlp", recipe=Recipe(epochs=1, lr=0.05, batch_size=64), progress=False)

    def full(*a, **k):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full)
    args = ["unlearn", "--model", str(orig), "--forget", "class:3", "--method", "ga", "--out", str(tmp_path / "u")]
    rc, err = _cli(args + ["--hp", "epochs=1", "--no-progress"], capsys)
    _one_line(rc, err)
    assert f"could not write {tmp_path / 'u'}: No space left on device" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orig"]


# ---- one error family across every family's public entry points ----------------------------------------------
def _digits_xy():
    d = uk.load_dataset("digits")
    return d.train.x[:120], d.train.y[:120]


def _mlp(outputs: int = 10):
    return uk.create_model("mlp", (1, 8, 8), outputs, hidden=(16,))


def _with_nan(x):
    x = x.clone()
    x[0, 0, 0, 0] = float("nan")
    return x


def _classifier_cases():
    x, y = _digits_xy()
    sets = {"forget": (x[:20], y[:20]), "retain": (x[20:], y[20:]), "test": (x[:40], y[:40])}
    return {
        "clf-unlearn-empty-forget": lambda t: uk.unlearn(_mlp(), (x[:0], y[:0]), (x, y), "ga", progress=False),
        "clf-unlearn-nan": lambda t: uk.unlearn(_mlp(), (_with_nan(x[:20]), y[:20]), (x[20:], y[20:]), "ga"),
        "clf-unlearn-1d-inputs": lambda t: uk.unlearn(_mlp(), (torch.zeros(5), y[:5]), (x, y), "ga", progress=False),
        "clf-unlearn-labels": lambda t: uk.unlearn(_mlp(), (x[:20], y[:20] + 10), (x[20:], y[20:]), "ga"),
        "clf-unlearn-method": lambda t: uk.unlearn(_mlp(), (x[:20], y[:20]), (x[20:], y[20:]), "nope"),
        "clf-evaluate-labels": lambda t: uk.evaluate(_mlp(), **{**sets, "test": (x[:40], y[:40] + 10)}),
        "clf-evaluate-nan": lambda t: uk.evaluate(_mlp(), **{**sets, "retain": (_with_nan(x[20:]), y[20:])}),
        "clf-evaluate-reference": lambda t: uk.evaluate(_mlp(), **sets, reference={"ua": "high"}),
        "clf-train-empty": lambda t: uk.train_model(_mlp(), (x[:0], y[:0]), Recipe(epochs=1), progress=False),
        "clf-train-labels": lambda t: uk.train_model(_mlp(), (x, y + 10), Recipe(epochs=1), progress=False),
        "clf-train-epochs-0": lambda t: uk.train_model(_mlp(), (x, y), Recipe(epochs=0), progress=False),
        "clf-create-model-option": lambda t: uk.create_model("mlp", (1, 8, 8), 10, widht=3),
        "clf-save-meta": lambda t: uk.save(_mlp(), t / "m", {"seed": object()}),
        "clf-load-missing": lambda t: uk.load(t / "nothing"),
        "clf-forget-spec": lambda t: uk.parse_forget("class:99", y),
    }


def _regression_cases():
    x, y = _digits_xy()
    yr = y.float()
    nan_targets = torch.where(torch.arange(20) == 3, float("nan"), yr[:20])
    return {
        "reg-unlearn-nan-targets": lambda t: uk.unlearn(
            _mlp(1), (x[:20], nan_targets), (x[20:], yr[20:]), "ga", task="regression", progress=False
        ),
        "reg-unlearn-empty-forget": lambda t: uk.unlearn(
            _mlp(1), (x[:0], yr[:0]), (x, yr), "ft", task="regression", progress=False
        ),
        "reg-unlearn-classifier-method": lambda t: uk.unlearn(
            _mlp(1), (x[:20], yr[:20]), (x[20:], yr[20:]), "rl", task="regression", progress=False
        ),
        "reg-evaluate-nan": lambda t: uk.evaluate(
            _mlp(1), forget=(_with_nan(x[:20]), yr[:20]), retain=(x, yr), test=(x, yr), task="regression"
        ),
    }


def _exact_cases():
    from unlearnkit import exact

    x, y = _digits_xy()
    spec = exact.ModelSpec("mlp", (1, 8, 8), 10, {"hidden": (16,)})

    def fit(t, data, recipe):
        return exact.ShardedModel.fit(
            t / "sm", data, exact.SISA(shards=2, slices=1), model=spec, recipe=recipe, executor="serial", progress=False
        )

    return {
        "exact-sisa-shards": lambda t: exact.SISA(shards=0),
        "exact-fit-epochs-0": lambda t: fit(t, (x, y), Recipe(epochs=0)),
        "exact-fit-empty": lambda t: fit(t, (x[:0], y[:0]), Recipe(epochs=1)),
        "exact-open-missing": lambda t: exact.ShardedModel.open(t / "nothing"),
    }


def _lm_cases():
    """Validation that fails before any model or tokenizer loads."""
    from unlearnkit import lm

    def jsonl(t, data: bytes):
        (t / "f.jsonl").write_bytes(data)
        return t / "f.jsonl"

    return {
        "lm-load-missing": lambda t: lm.load_causal_lm(t / "nothing"),
        "lm-jsonl-not-utf8": lambda t: lm.read_jsonl(jsonl(t, b'{"question": "\xff"}\n')),
        "lm-jsonl-bad-row": lambda t: lm.split_from_jsonl(jsonl(t, b"[1, 2]\n"), jsonl(t, b"[1, 2]\n")),
        "lm-unlearn-no-split": lambda t: lm.unlearn_lm(torch.nn.Linear(1, 1), None, [{"q": 1}], "npo"),
        "lm-bench-method": lambda t: lm.LMBenchConfig(methods=["nope"]),
        "lm-empty-forget": lambda t: lm.LMSplit("mine", [], [{"question": "q", "answer": "a"}]),
        "lm-bench-epochs-0": lambda t: lm.LMBenchConfig(train=lm.LMTrainConfig(epochs=0)),
        "lm-train-epochs-0": lambda t: lm.train_lm(torch.nn.Linear(1, 1), None, lm.LMTrainConfig(epochs=0)),
    }


def _diffusion_cases():
    """Validation that fails before any pipeline loads."""
    from unlearnkit import diffusion as ud

    return {
        "diff-dataset": lambda t: ud.load_concept_data("nope"),
        "diff-bench-method": lambda t: ud.DiffBenchConfig(methods=["nope"]),
        "diff-unlearn-not-a-model": lambda t: ud.unlearn_concept("model.bin", None, "object:three"),
        "diff-load-missing": lambda t: ud.load_diffusion(t / "nothing"),
    }


def _gan_cases():
    from unlearnkit.gan.adapt_unlearn import AdaptUnlearnConfig, adapt, load_negative_images
    from unlearnkit.gan.models import GAN, GANConfig
    from unlearnkit.gan.train import AdversarialRecipe, load_images

    def empty_npy(t):
        np.save(t / "n.npy", np.zeros((0, 1, 8, 8), np.float32))
        return load_negative_images(t / "n.npy", (1, 8, 8))

    return {
        "gan-config-gamma": lambda t: AdaptUnlearnConfig(gamma=0.0),
        "gan-recipe-steps": lambda t: AdversarialRecipe(steps=0),
        "gan-negatives-empty": empty_npy,
        "gan-negatives-missing": lambda t: load_negative_images(t / "nothing.npy", (1, 8, 8)),
        "gan-images-dataset": lambda t: load_images("nope"),
        "gan-config-channels": lambda t: GANConfig(image_shape=(0, 8, 8)),
        "gan-adapt-no-negatives": lambda t: adapt(GAN(GANConfig()), torch.zeros(0, 1, 8, 8), AdaptUnlearnConfig()),
    }


FAMILY_CASES = {
    "classifier": _classifier_cases,
    "regression": _regression_cases,
    "exact": _exact_cases,
    "lm": _lm_cases,
    "diffusion": _diffusion_cases,
    "gan": _gan_cases,
}


@pytest.mark.parametrize("family", list(FAMILY_CASES))
def test_bad_inputs_raise_unlearnkit_errors_in_every_family(tmp_path, family):
    """Every bad input given to a family's public entry points ends in an ``UnlearnkitError`` with a one-line
    message, never in a raw ``RuntimeError`` / ``IndexError`` / ``TypeError`` from inside."""
    raw = {}
    for name, call in FAMILY_CASES[family]().items():
        where = tmp_path / name
        where.mkdir()
        try:
            call(where)
        except UnlearnkitError as exc:
            if "\n" in str(exc):
                raw[name] = f"multi-line message: {exc}"
        except Exception as exc:  # noqa: BLE001 - the point is to see what escapes
            raw[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            raw[name] = "no error"
    assert raw == {}


def _evil_pt(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "ran"
    torch.save({"x": _Evil(marker)}, tmp_path / "evil.pt")
    return tmp_path / "evil.pt", marker


def test_cli_gan_unlearn_refuses_pickled_negatives_before_training(tmp_path, capsys, monkeypatch):
    """The file is refused before any GAN is trained or loaded (the cache stays empty), and its code never runs."""
    evil, marker = _evil_pt(tmp_path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    args = ["gan-unlearn", "--negatives", str(evil), "--out", str(tmp_path / "out"), "--no-progress"]
    rc, err = _cli(args + ["--cache-dir", str(tmp_path / "cache")], capsys)
    _one_line(rc, err)
    assert "weights_only=True" in err and not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]


@pytest.mark.slow
def test_gan_unlearn_subprocess_never_runs_pickled_negatives(tmp_path):
    import os
    import subprocess
    import sys

    evil, marker = _evil_pt(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(SRC.parent), "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "1"}
    args = ["gan-unlearn", "--negatives", str(evil), "--out", str(tmp_path / "out"), "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "unlearnkit.cli", *args, "--cache-dir", str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("bad", ["nan-inputs", "labels-out-of-range", "epochs-0"])
def test_exact_fit_checks_its_data_before_writing_anything(tmp_path, bad):
    from unlearnkit import exact

    x, y = _digits_xy()
    recipe = Recipe(epochs=0 if bad == "epochs-0" else 1)
    data = {"nan-inputs": (_with_nan(x), y), "labels-out-of-range": (x, y + 10), "epochs-0": (x, y)}[bad]
    with pytest.raises(UnlearnkitError):
        exact.ShardedModel.fit(
            tmp_path / "sm",
            data,
            exact.SISA(shards=2, slices=1),
            model=exact.ModelSpec("mlp", (1, 8, 8), 10, {"hidden": (16,)}),
            recipe=recipe,
            executor="serial",
            progress=False,
        )
    assert not (tmp_path / "sm").exists()


def test_cli_evaluate_a_checkpoint_with_nan_weights_is_one_line(tmp_path, capsys):
    model = uk.create_model("mlp", (1, 8, 8), 10, hidden=(16,))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    spec = {"name": "mlp", "input_shape": [1, 8, 8], "num_classes": 10, "kwargs": {"hidden": [16]}}
    uk.save(model, tmp_path / "nan", {"kind": "original", "dataset": "digits", "model": spec})
    rc, err = _cli(["evaluate", "--model", str(tmp_path / "nan"), "--forget", "class:3"], capsys)
    _one_line(rc, err)
    assert "NaN or infinite outputs" in err


@pytest.mark.parametrize("name", ["audit_results.json", "tune_results.json", "audit.json", "tune.json"])
def test_report_refuses_malformed_audit_and_tune_tables(tmp_path, capsys, name):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"rows": [{"method": "ft", "ua": 1.0}]}))
    (run / name).write_text(json.dumps([{"method": "ft"}]))
    rc, err = _cli(["report", str(run)], capsys)
    _one_line(rc, err)
    assert name in err and "not an object" in err
