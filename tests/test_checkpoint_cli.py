"""Checkpoints and the command line: train → unlearn → evaluate, bench, and the never-overwrite rule."""

import json

import pytest

import unlearnkit as uk
from unlearnkit.cli import main
from unlearnkit.errors import CheckpointError

from .conftest import state_equal


def test_save_load_roundtrip_refuses_overwrite(tmp_path, original, digits):
    meta = {"model": {"name": "cnn", "input_shape": [1, 8, 8], "num_classes": 10, "kwargs": {"width": 8, "hidden": 32}}}
    uk.save(original, tmp_path / "ck", meta)
    loaded, m = uk.load(tmp_path / "ck")
    assert state_equal(loaded, original) and m == meta
    with pytest.raises(CheckpointError, match="already holds"):
        uk.save(original, tmp_path / "ck", meta)
    assert not list((tmp_path / "ck").glob("*.tmp"))
    assert (tmp_path / "ck" / "meta.json").stat().st_mode & 0o044  # readable by others like any plain file
    with pytest.raises(CheckpointError, match="not an unlearnkit checkpoint"):
        uk.load(tmp_path)


def test_cli_train_unlearn_evaluate(tmp_path, capsys):
    orig = tmp_path / "orig"
    assert main(["train", "--dataset", "digits", "--epochs", "3", "--out", str(orig), "--no-progress"]) == 0
    weights_before = (orig / "model.safetensors").read_bytes()
    meta = json.loads((orig / "meta.json").read_text())
    assert meta["dataset"] == "digits" and meta["recipe"]["epochs"] == 3 and "ta" in meta["metrics"]

    # refusing to write over the original
    assert main(["unlearn", "--model", str(orig), "--forget", "class:1", "--out", str(orig)]) == 2
    assert "original" in capsys.readouterr().err

    out = tmp_path / "unl"
    rc = main(
        [
            "unlearn",
            "--model",
            str(orig),
            "--forget",
            "class:1",
            "--method",
            "ga",
            "--hp",
            "lr=0.01",
            "--hp",
            "epochs=2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert (orig / "model.safetensors").read_bytes() == weights_before
    umeta = json.loads((out / "meta.json").read_text())
    assert umeta["method"] == "ga" and umeta["hparams"]["lr"] == 0.01 and umeta["forget"]["n_forget"] > 100

    assert main(["evaluate", "--model", str(out), "--forget", "class:1", "--reference", str(orig)]) == 0
    printed = capsys.readouterr().out
    assert "Avg-Gap" in printed and "UA" in printed
    assert main(["unlearn", "--model", str(orig), "--forget", "class:42", "--out", str(tmp_path / "x")]) == 2
    assert "unknown class" in capsys.readouterr().err


def test_cli_bench_writes_table(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "bench",
            "--epochs",
            "4",
            "--methods",
            "ft,salun",
            "--hp",
            "salun.lr=0.02",
            "--hp",
            "salun.epochs=1",
            "--hp",
            "ft.epochs=1",
            "--forget",
            "class:2",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    names = [r["method"] for r in res["rows"]]
    assert names == ["retrain", "original", "ft", "salun"]
    rows = {r["method"]: r for r in res["rows"]}
    assert rows["retrain"]["avg_gap"] == 0 and rows["retrain"]["ua"] == 100.0  # class never seen
    assert rows["salun"]["hparams"]["lr"] == 0.02 and rows["salun"]["ua"] > rows["original"]["ua"]
    assert "time/retrain" in capsys.readouterr().out
    assert (out / "results.csv").read_text().startswith("method,")
    # the original is cached: a second run reuses it
    cached = list((tmp_path / "cache" / "originals").iterdir())
    assert len(cached) == 1
    assert (
        main(
            [
                "bench",
                "--epochs",
                "4",
                "--methods",
                "ga",
                "--hp",
                "ga.epochs=1",
                "--forget",
                "class:2",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--out",
                str(tmp_path / "run2"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert list((tmp_path / "cache" / "originals").iterdir()) == cached


def test_cli_rejects_bad_hparam(tmp_path, capsys):
    rc = main(["bench", "--methods", "ft", "--hp", "ft.speed=3", "--cache-dir", str(tmp_path), "--no-progress"])
    assert rc == 2 and "valid:" in capsys.readouterr().err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "unlearnkit" in capsys.readouterr().out


def test_python_dash_m_unlearnkit_is_the_command_line():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "unlearnkit", "--version"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "unlearnkit" in proc.stdout + proc.stderr
