"""The output discipline (unlearnkit/outputs.py): refusals before any work, staged swaps that a crash (a real
SIGKILL, in a subprocess) never turns into data loss, recovery on the next run, and file modes."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit.cli import build_parser, main
from unlearnkit.errors import CheckpointError
from unlearnkit.outputs import (
    KILL_ENV,
    check_output_file,
    check_output_folder,
    recover,
    staged_folder,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")

#: a subprocess that imports only unlearnkit.errors and unlearnkit.outputs (not the package's torch imports),
#: then replaces folder argv[1] with 30 files reading "new"
SWAP_SCRIPT = f"""
import sys, types
pkg = types.ModuleType("unlearnkit"); pkg.__path__ = [{SRC + "/unlearnkit"!r}]; sys.modules["unlearnkit"] = pkg
from pathlib import Path
from unlearnkit.outputs import staged_folder
with staged_folder(Path(sys.argv[1]), replace=True) as tmp:
    for i in range(30):
        (tmp / f"part{{i}}.txt").write_text("new")
"""


def _folder(path: Path, text: str, n: int = 30) -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        (path / f"part{i}.txt").write_text(text)
    return path


def _content(path: Path) -> set[str]:
    return {f.read_text() for f in path.iterdir()} if path.is_dir() else set()


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _run_killed(args: list[str], stage: str, script: str = SWAP_SCRIPT) -> None:
    env = {**os.environ, KILL_ENV: stage, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]  # really killed by SIGKILL


@pytest.mark.parametrize(
    "stage, survivor",
    [("ready", "old"), ("aside", "new"), ("swapped", "new")],
)
def test_kill_9_during_an_overwrite_swap_leaves_one_complete_version(tmp_path, stage, survivor):
    """SIGKILL at each step of the swap: afterwards (and after the next run's recovery) ``out`` holds the old
    or the new folder complete, never nothing or a mix, and no temporary is left."""
    out = _folder(tmp_path / "out", "old")
    _run_killed([str(out)], stage)
    if stage == "aside":
        assert not out.exists()  # the crash window the swap must survive: the old folder is set aside
    recover(out)
    assert _content(out) == {survivor} and len(list(out.iterdir())) == 30
    assert _leftovers(tmp_path, "out") == []


def test_recovery_undoes_a_swap_whose_new_folder_was_not_ready(tmp_path):
    """Old folder set aside, new one still a staging folder (not fsynced and marked ready): put the old back."""
    out = tmp_path / "out"
    _folder(tmp_path / ".out.999999999-abcdefgh.old", "old")
    _folder(tmp_path / ".out.999999999-cdefghij.tmp", "half", n=3)
    recover(out)
    assert _content(out) == {"old"} and _leftovers(tmp_path, "out") == []


def test_recovery_leaves_temporaries_of_running_processes_and_removes_legacy_ones(tmp_path):
    out = _folder(tmp_path / "out", "old")
    live = _folder(tmp_path / f".out.{os.getpid()}-abcdefgh.tmp", "mine", n=1)  # this process: still writing
    _folder(tmp_path / ".out.k2j3h4x9.tmp", "legacy", n=1)  # an older release's staging folder
    (tmp_path / ".out.999999999-efghijkl.new").mkdir()  # a dead process's ready folder, out already present
    (tmp_path / ".out.json.k2j3h4x9.tmp").write_text("another file's temporary")  # not out's
    recover(out)
    assert _leftovers(tmp_path, "out") == sorted([live.name, ".out.json.k2j3h4x9.tmp"]) and _content(out) == {"old"}


def test_a_crash_inside_the_block_keeps_the_old_folder(tmp_path):
    out = _folder(tmp_path / "out", "old")
    with pytest.raises(RuntimeError, match="boom"), staged_folder(out, replace=True) as tmp:
        (tmp / "part0.txt").write_text("new")
        raise RuntimeError("boom")
    assert _content(out) == {"old"} and _leftovers(tmp_path, "out") == []


def test_replace_drops_stale_files_and_files_get_the_umask_modes(tmp_path):
    out = _folder(tmp_path / "out", "old")
    (out / "predictions.npz").write_bytes(b"stale")
    with staged_folder(out, replace=True) as tmp:
        (tmp / "results.json").write_text("{}")
        fd = os.open(tmp / "model.safetensors", os.O_CREAT | os.O_WRONLY, 0o600)  # as safetensors writes it
        os.close(fd)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "results.json"]
    mode = stat.S_IMODE((out / "model.safetensors").stat().st_mode)
    assert mode == stat.S_IMODE((out / "results.json").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_saved_checkpoint_weights_have_the_mode_of_meta_json(tmp_path):
    import torch

    import unlearnkit as uk

    uk.save(torch.nn.Linear(2, 2), tmp_path / "ck", {"kind": "x"})
    modes = {stat.S_IMODE((tmp_path / "ck" / f).stat().st_mode) for f in ("model.safetensors", "meta.json")}
    assert modes == {0o666 & ~_umask()}


def _model_folder(path: Path, kind: str | None = "original") -> Path:
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"kind": kind}))
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "config.json").write_text("{}")
    return path


@pytest.mark.parametrize(
    "where, match",
    [
        ("model", "is the input"),
        ("link-to-model", "is the input"),
        ("parent-of-model", "contains the input"),
        ("inside-model", "inside the input"),
        ("inside-other-model", "inside the model folder"),
        ("original", "original checkpoint"),
    ],
)
def test_output_folder_refusals(tmp_path, where, match):
    model = _model_folder(tmp_path / "models" / "m")
    other = _model_folder(tmp_path / "other", kind="unlearned")
    orig2 = _model_folder(tmp_path / "orig2")
    (tmp_path / "link").symlink_to(model)
    out = {
        "model": model,
        "link-to-model": tmp_path / "link",
        "parent-of-model": tmp_path / "models",
        "inside-model": model / "sub",
        "inside-other-model": other / "sub",
        "original": orig2,
    }[where]
    with pytest.raises(CheckpointError, match=match):
        check_output_folder(out, overwrite=True, inputs=[model])
    assert (model / "meta.json").is_file() and (orig2 / "meta.json").is_file()


def test_output_file_refusals(tmp_path):
    model = _model_folder(tmp_path / "m")
    with pytest.raises(CheckpointError, match="inside the input"):
        check_output_file(model / "config.json", overwrite=True, inputs=[model])
    with pytest.raises(CheckpointError, match="inside the model folder"):
        check_output_file(model / "metrics.json", overwrite=True)  # never a file in a model folder
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(CheckpointError, match="already exists.*--overwrite"):
        check_output_file(tmp_path / "metrics.json", overwrite=False)
    assert check_output_file(tmp_path / "metrics.json", overwrite=True) == tmp_path / "metrics.json"


def test_results_folder_from_an_earlier_run_is_accepted_other_folders_are_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    assert check_output_folder(run, overwrite=False, results=True) == run
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="holds no unlearnkit results"):
        check_output_folder(tmp_path / "mine", overwrite=False, results=True)


def _cli_err(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    return err


def test_cli_lm_commands_refuse_outputs_that_would_destroy_the_model(tmp_path, capsys):
    """lm-unlearn --out <folder containing --model> --overwrite, lm-eval --out model/config.json: refused
    before anything is loaded; the model's files are untouched."""
    model = _model_folder(tmp_path / "lms" / "model")
    data = tmp_path / "f.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n')
    argv = ["lm-unlearn", "--model", str(model), "--method", "ga", "--forget", str(data), "--retain", str(data)]
    err = _cli_err([*argv, "--out", str(tmp_path / "lms"), "--overwrite"], capsys)
    assert "contains the input" in err
    err = _cli_err(["lm-eval", "--model", str(model), "--out", str(model / "config.json")], capsys)
    assert "inside the input" in err
    err = _cli_err([*argv, "--out", str(data)], capsys)
    assert "is the input" in err
    assert (model / "config.json").read_text() == "{}" and (model / "model.safetensors").read_bytes() == b"weights"


def test_cli_exact_train_and_bench_never_write_into_an_original(tmp_path, capsys):
    orig = _model_folder(tmp_path / "orig")
    before = sorted(p.name for p in orig.iterdir())
    err = _cli_err(["exact-train", "--out", str(orig), "--overwrite", "--no-progress"], capsys)
    assert "original checkpoint" in err
    err = _cli_err(["bench", "--out", str(orig), "--epochs", "1", "--no-progress"], capsys)
    assert "holds a model" in err or "original" in err
    assert sorted(p.name for p in orig.iterdir()) == before


def test_every_writing_command_points_to_the_output_discipline():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    writers = {
        n
        for n, p in sub.choices.items()
        if any({"--out", "--json"} & set(a.option_strings) and a.nargs != 0 for a in p._actions)
    }
    assert {
        "train",
        "unlearn",
        "bench",
        "lm-unlearn",
        "lm-eval",
        "diff-unlearn",
        "gan-unlearn",
        "exact-train",
    } <= writers
    for name in writers:
        assert "README.md" in (sub.choices[name].epilog or ""), name
    # `delete --json` only prints: no pointer to the output discipline
    assert "delete" not in writers and "README.md" not in sub.choices["delete"].format_help()


LM_SCRIPT = """
import os, sys
from unlearnkit.lm import TinyLMConfig, build_tiny_lm, save_causal_lm, train_tokenizer
from unlearnkit.outputs import KILL_ENV
stage = os.environ.pop(KILL_ENV)
tok = train_tokenizer(["Question: who is Ada? Answer: a tiny fictitious person."], vocab_size=300)
model = build_tiny_lm(TinyLMConfig(d_model=16, n_layers=1, n_heads=2, max_length=32), tok)
save_causal_lm(model, tok, sys.argv[1], meta={"v": "old"})
os.environ[KILL_ENV] = stage
save_causal_lm(model, tok, sys.argv[1], meta={"v": "new"}, overwrite=True)
"""


@pytest.mark.slow  # the subprocess imports torch and transformers (10-30 s); the swap itself is tested above
def test_kill_9_during_lm_overwrite_keeps_a_loadable_model(tmp_path):
    """lm-unlearn --overwrite used to delete the old folder and then rename the new one in: a kill between the
    two left nothing at --out. Now the next run finds the new model, complete and loadable."""
    pytest.importorskip("transformers")
    from unlearnkit.lm import load_causal_lm
    from unlearnkit.lm.model import check_lm_output

    out = tmp_path / "lm"
    _run_killed([str(out)], "aside", script=LM_SCRIPT)
    assert not out.exists()  # killed with the old folder set aside and the new one ready beside it
    check_lm_output(out, overwrite=True)  # the next run's check recovers the interrupted swap
    assert json.loads((out / "unlearnkit.json").read_text()) == {"v": "new"}
    load_causal_lm(out)
    assert _leftovers(tmp_path, "lm") == []


PIPELINE_SCRIPT = """
import os, signal, sys
import torch
from unlearnkit.diffusion import build_concept_data
from unlearnkit.diffusion.hf import load_pipeline, save_pipeline, tiny_pipeline
data = build_concept_data(torch.rand(4, 1, 8, 8), torch.arange(4) % 2, ["ant", "bee"], styles=("plain",), synonyms={})
model = load_pipeline(tiny_pipeline(data.vocab.words[1:], sys.argv[2], latent=False, width=8), data)
model.text_encoder.save_pretrained = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # dies mid-write
save_pipeline(model, sys.argv[1])
"""


@pytest.mark.slow  # the subprocess imports torch and diffusers (10-30 s)
def test_kill_9_while_writing_a_diffusers_pipeline_leaves_no_partial_folder(tmp_path):
    """The pipeline used to be written in place, so a kill left unet/ without text_encoder/ at --out."""
    pytest.importorskip("diffusers")
    from unlearnkit.diffusion.hf import is_pipeline_folder

    out = tmp_path / "erased"
    _run_killed([str(out), str(tmp_path / "src")], "never", script=PIPELINE_SCRIPT)
    assert not out.exists() and not is_pipeline_folder(out)
    assert _leftovers(tmp_path, "erased")  # the dead writer's staging folder, with unet/ only ...
    check_output_folder(out, overwrite=False)  # ... which the next run removes
    assert _leftovers(tmp_path, "erased") == []


def test_bench_into_an_earlier_run_keeps_no_stale_artefact(tmp_path, capsys):
    """An earlier run's predictions.npz (and report) used to survive a new bench into the same --out, and
    report then drew methods that were not in the table."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text('{"rows": []}')
    (out / "predictions.npz").write_bytes(b"stale")
    (out / "report.html").write_text("stale")
    argv = ["bench", "--train-subset", "200", "--epochs", "1", "--methods", "ft", "--hp", "ft.epochs=1"]
    argv += ["--forget", "class:2", "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json"]
    assert [r["method"] for r in json.loads((out / "results.json").read_text())["rows"]][-1] == "ft"
    assert _leftovers(tmp_path, "run") == []


def test_a_project_folder_with_a_config_json_is_not_a_model(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # many projects keep one at their root
    (tmp_path / "meta.json").write_text('{"title": "notes"}')
    assert check_output_folder(tmp_path / "runs" / "x", overwrite=False) == tmp_path / "runs" / "x"
