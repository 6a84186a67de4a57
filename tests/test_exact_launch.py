"""dp-train starts the processes its launcher was asked for (`accelerate launch --cpu` starts only one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnkit.cli import main
from unlearnkit.errors import ConfigError
from unlearnkit.exact import launch

ACCEL = ["/venv/bin/python", "/venv/bin/accelerate", "launch"]


@pytest.mark.parametrize(
    ("argv", "count"),
    [
        ([*ACCEL, "--num_processes", "2", "--cpu", "-m", "unlearnkit.cli", "dp-train"], 2),
        ([*ACCEL, "--cpu", "--num_processes=3", "train.py"], 3),
        ([*ACCEL, "--num-processes", "4", "train.py"], 4),
        ([*ACCEL, "--cpu", "-m", "unlearnkit.cli", "dp-train", "--num_processes", "5"], None),  # the script's own
        ([*ACCEL, "--cpu", "train.py"], None),
        (["/usr/bin/bash", "-c", "launch --num_processes 2"], None),  # not accelerate
        ([], None),
    ],
)
def test_accelerate_launch_count_reads_the_launcher_options_only(argv, count):
    assert launch.accelerate_launch_count(argv) == count


def test_requested_processes_prefers_world_size_and_reads_the_launcher_only_under_accelerate():
    parent = [*ACCEL, "--num_processes", "2", "--cpu", "x.py"]
    assert launch.requested_processes({"WORLD_SIZE": "3"}, parent) == 3
    assert launch.requested_processes({"ACCELERATE_USE_CPU": "True"}, parent) == 2
    assert launch.requested_processes({}, parent) is None


def test_launch_plan_starts_what_the_launcher_asked_for_or_refuses():
    assert launch.launch_plan(1, None, 2, distributed=False) == 2  # accelerate launch --cpu --num_processes 2
    assert launch.launch_plan(1, 2, 2, distributed=False) == 2
    assert launch.launch_plan(2, 2, 2, distributed=True) is None  # torchrun already started them
    assert launch.launch_plan(1, None, None, distributed=False) is None
    assert launch.launch_plan(1, 1, 1, distributed=False) is None
    with pytest.raises(ConfigError, match="asked for 2 processes but runs in 1"):
        launch.launch_plan(1, 2, None, distributed=False)  # nothing says the launcher wanted 2: never guess
    with pytest.raises(ConfigError, match="disagrees"):
        launch.launch_plan(1, 3, 2, distributed=False)
    with pytest.raises(ConfigError, match="asked for 4 processes but runs in 2"):
        launch.launch_plan(2, 4, None, distributed=True)


def test_dp_train_under_a_one_process_launcher_starts_the_processes(monkeypatch, tmp_path):
    started = []
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(launch, "requested_processes", lambda: 2)
    monkeypatch.setattr(launch, "run_processes", lambda n, argv: started.append((n, argv)) or 0)
    args = ["dp-train", "--cpu", "--dataset", "digits", "--out", str(tmp_path / "dp")]
    monkeypatch.setattr(sys, "argv", ["/x/unlearnkit/cli/__main__.py", *args])
    assert main(args) == 0
    assert started == [(2, args)] and not (tmp_path / "dp").exists()


def test_dp_train_called_from_python_under_such_a_launcher_refuses(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(launch, "requested_processes", lambda: 2)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert main(["dp-train", "--cpu", "--dataset", "digits", "--out", str(tmp_path / "dp")]) == 2
    assert "was not started from the command line" in capsys.readouterr().err


@pytest.mark.slow
def test_the_docs_command_with_two_cpu_processes_records_two(tmp_path):
    """`accelerate launch --num_processes 2 --cpu … dp-train` (Accelerate's plain launcher) trains on two."""
    pytest.importorskip("accelerate")
    launcher = str(Path(sys.executable).with_name("accelerate"))
    cmd = [launcher, "launch", "--num_processes", "2", "--cpu", "-m", "unlearnkit.cli", "dp-train", "--cpu"]
    cmd += ["--dataset", "digits", "--train-subset", "300", "--epochs", "1", "--model-kw", "hidden=[16]"]
    cmd += ["--out", str(tmp_path / "dp"), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "dp" / "meta.json").read_text())
    assert meta["processes"] == 2 and meta["global_batch"] == 2 * meta["recipe"]["batch_size"]
